/**
 * An endpoint that knows a public model by another id (`modelNames`): its answers carry its own id in
 * `model`, and the client gets the public id it asked for. Streams are renamed event by event on their
 * bytes (no parse); a JSON answer, already parsed, is written again.
 */
export class ModelRename {
  private readonly patterns: Buffer[];
  private readonly replacements: Buffer[];

  constructor(
    /** The endpoint's own id for the model. */
    readonly upstream: string,
    /** The id the client asked for. */
    readonly publicId: string,
  ) {
    const from = JSON.stringify(upstream);
    const to = JSON.stringify(publicId);
    // Model servers write compact JSON (vLLM, SGLang, Ollama, llama.cpp); Python's default adds a space.
    this.patterns = [Buffer.from(`"model":${from}`), Buffer.from(`"model": ${from}`)];
    this.replacements = [Buffer.from(`"model":${to}`), Buffer.from(`"model": ${to}`)];
  }

  /** Whole SSE events with every `"model":"<upstream id>"` made the public id; the same buffer if none. */
  events(events: Buffer): Buffer {
    let out = events;
    for (let p = 0; p < this.patterns.length; p++)
      out = replaceAll(out, this.patterns[p]!, this.replacements[p]!);
    return out;
  }

  /** A complete answer with the public id, or undefined when its `model` is not the upstream's id. */
  answer(parsed: object): { body: Buffer; parsed: object } | undefined {
    if ((parsed as { model?: unknown }).model !== this.upstream) return undefined;
    const renamed = { ...parsed, model: this.publicId };
    return { body: Buffer.from(JSON.stringify(renamed)), parsed: renamed };
  }
}

function replaceAll(buf: Buffer, pattern: Buffer, replacement: Buffer): Buffer {
  let at = buf.indexOf(pattern);
  if (at < 0) return buf;
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    parts.push(buf.subarray(from, at), replacement);
    from = at + pattern.length;
    at = buf.indexOf(pattern, from);
  }
  parts.push(buf.subarray(from));
  return Buffer.concat(parts);
}
