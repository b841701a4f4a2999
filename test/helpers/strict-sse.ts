/**
 * A strict Server-Sent Events reader (WHATWG event-stream parsing, line ends CRLF, LF or CR), for
 * checking what a client receives: the events it dispatches, and any bytes after the last blank line
 * (an unfinished event a real client would silently drop, or glue onto what comes next).
 */
export interface StrictEvents {
  /** The `data` of every dispatched event, in order. */
  events: string[];
  /** Text after the last complete event ('' when the stream ended on an event boundary). */
  unfinished: string;
}

export function readStrictSse(text: string): StrictEvents {
  const events: string[] = [];
  let data: string[] = [];
  let lastEnd = 0;
  const re = /\r\n|\r|\n/g;
  let lineStart = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const line = text.slice(lineStart, m.index);
    lineStart = m.index + m[0].length;
    if (line === '') {
      if (data.length > 0) events.push(data.join('\n'));
      data = [];
      lastEnd = lineStart;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
  }
  return { events, unfinished: text.slice(lastEnd) };
}

export interface StreamReading {
  /** The assistant text of choice 0. */
  text: string;
  roleDeltas: number;
  finishReasons: number;
  done: number;
  /** The error events' payloads. */
  errors: Array<{ message?: string; code?: string }>;
  /** Event payloads that are neither [DONE] nor JSON: an unreadable stream. */
  unreadable: string[];
  /** Events after [DONE] or after an error event. */
  afterEnd: number;
  unfinished: string;
}

/** Reads an OpenAI chat completion stream strictly. */
export function readCompletionStream(raw: string): StreamReading {
  const { events, unfinished } = readStrictSse(raw);
  const reading: StreamReading = {
    text: '',
    roleDeltas: 0,
    finishReasons: 0,
    done: 0,
    errors: [],
    unreadable: [],
    afterEnd: 0,
    unfinished,
  };
  let ended = false;
  for (const data of events) {
    if (ended) reading.afterEnd++;
    if (data === '[DONE]') {
      reading.done++;
      ended = true;
      continue;
    }
    let json: {
      error?: { message?: string; code?: string };
      choices?: Array<{ delta?: { role?: string; content?: string | null }; finish_reason?: string | null }>;
    };
    try {
      json = JSON.parse(data) as typeof json;
    } catch {
      reading.unreadable.push(data);
      continue;
    }
    if (json.error) {
      reading.errors.push(json.error);
      ended = true;
      continue;
    }
    const choice = json.choices?.[0];
    if (choice?.delta?.role !== undefined) reading.roleDeltas++;
    if (typeof choice?.delta?.content === 'string') reading.text += choice.delta.content;
    if (choice?.finish_reason) reading.finishReasons++;
  }
  return reading;
}
