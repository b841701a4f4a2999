/**
 * A prompt's token count, estimated without a tokenizer: about four characters per token for text
 * (OpenAI's rule of thumb for English; it errs high for code and low for some scripts), a flat cost per
 * image part, and a few tokens of framing per message. Used only to reserve tokens against a `tpm`
 * limit; the real usage corrects the reservation when the answer reports it.
 */
const CHARS_PER_TOKEN = 4;
const TOKENS_PER_MESSAGE = 4;
/** OpenAI's cost of one high-detail 512 px tile plus the base: a fair middle for an image. */
const TOKENS_PER_IMAGE = 765;

export function estimatePromptTokens(json: Readonly<Record<string, unknown>>): number {
  let chars = 0;
  let tokens = 0;
  const messages = json.messages;
  if (Array.isArray(messages)) {
    for (const message of messages) {
      tokens += TOKENS_PER_MESSAGE;
      if (message === null || typeof message !== 'object') continue;
      const content = (message as { content?: unknown }).content;
      if (typeof content === 'string') chars += content.length;
      else if (Array.isArray(content)) {
        for (const part of content) {
          if (part === null || typeof part !== 'object') continue;
          const p = part as { type?: unknown; text?: unknown };
          if (typeof p.text === 'string') chars += p.text.length;
          else if (p.type === 'image_url' || p.type === 'input_image' || p.type === 'image')
            tokens += TOKENS_PER_IMAGE;
        }
      }
      const calls = (message as { tool_calls?: unknown }).tool_calls;
      if (calls !== undefined) chars += JSON.stringify(calls).length;
    }
  }
  // Tool definitions are part of the prompt the model reads.
  if (json.tools !== undefined) chars += JSON.stringify(json.tools).length;
  // Embeddings' `input` and text completions' `prompt`: text, texts, or token ids (counted as they are).
  for (const field of [json.input, json.prompt]) {
    if (typeof field === 'string') chars += field.length;
    else if (Array.isArray(field))
      for (const item of field as unknown[]) {
        if (typeof item === 'string') chars += item.length;
        else if (typeof item === 'number') tokens++;
        else if (Array.isArray(item)) tokens += item.length;
      }
  }
  return tokens + Math.ceil(chars / CHARS_PER_TOKEN);
}
