/**
 * The one writer of what the gateway itself sends on an event stream: its headers, data events,
 * error events, the end and heartbeats. (Upstream events are relayed as they came.)
 */
import { toOpenAIErrorBody, type GatewayError } from '../../errors/gateway-error.js';
import type { ClientResponse } from './client-response.js';

/**
 * Makes the response an event stream; the status line (200) and headers go out with the first write.
 * Headers are set one by one rather than passed to writeHead: node then merges nothing.
 */
export function setEventStreamHeaders(res: ClientResponse): void {
  res.setHeader('content-type', 'text/event-stream; charset=utf-8');
  res.setHeader('cache-control', 'no-cache');
  res.setHeader('x-accel-buffering', 'no');
  res.setHeader('connection', 'keep-alive');
}

/** An event carrying `payload` as JSON. */
export function sseData(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/** The event that ends a broken stream: OpenAI's error body, and no [DONE] after it. */
export function sseError(error: GatewayError): string {
  return sseData(toOpenAIErrorBody(error));
}

/** The end of a complete stream. */
export const SSE_DONE = 'data: [DONE]\n\n';

/** A comment: not content, but it keeps idle proxies from closing a stream that waits. */
export const SSE_HEARTBEAT = ': keep-alive\n\n';
