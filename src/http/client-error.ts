import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, type ErrorCode } from '../errors/codes.js';

/**
 * Answers for requests Node's HTTP parser rejects before the application sees them (a malformed
 * request, headers over the size limit, a request not received within CLIENT_BODY_TIMEOUT_MS). Node
 * would write a bare status line; clients get OpenAI's error body like every other error.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, bodyTimeoutMs: number): void {
  const response = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  // A response already under way cannot be followed by another; a reset needs no answer.
  if (err.code === 'ECONNRESET' || !socket.writable || response?.headersSent) {
    socket.destroy();
    return;
  }
  const [code, message] = describe(err, bodyTimeoutMs);
  const { status, type } = ERROR_CODES[code];
  const body = JSON.stringify({ error: { message, type, param: null, code } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  // The client may still be sending: the connection goes once the answer is out.
  socket.once('finish', () => socket.destroy());
}

function describe(err: NodeJS.ErrnoException, bodyTimeoutMs: number): [ErrorCode, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return ['request_headers_too_large', 'The request headers are too large (16 KiB at most).'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return ['request_too_large', 'The request has chunk extensions that are too large.'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        'request_timeout',
        `The request was not received in full within ${Math.round(bodyTimeoutMs / 1000)} s.`,
      ];
    default:
      return ['malformed_request', 'The request is not valid HTTP/1.1.'];
  }
}
