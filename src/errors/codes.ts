/**
 * Every error code the gateway sends (in `error.code` of OpenAI's error body, or of an SSE error event),
 * with its HTTP status, its type and what a client should do about it. The error classes take their
 * code from here, and `docs/errors.md` is checked against it (test/unit/error-codes.test.ts).
 * `status` is the HTTP status of a JSON answer; a code marked `stream` can also end a stream that had
 * already started (status 200 then, the error in the last event).
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'upstream_error'
  | 'timeout_error'
  | 'server_error';

export const ERROR_CODES = {
  // The request
  invalid_request: {
    status: 400,
    type: 'invalid_request_error',
    meaning:
      'The body is not a chat request (model, messages, stream of the wrong kind), or nested too deeply.',
    action: 'Fix the request; the message names the field. Do not retry as it is.',
  },
  invalid_json: {
    status: 400,
    type: 'invalid_request_error',
    meaning: 'The body is empty or not JSON.',
    action: 'Send a JSON object. Do not retry as it is.',
  },
  invalid_header: {
    status: 400,
    type: 'invalid_request_error',
    meaning: 'An `x-gateway-*` timeout header has a value that is not a whole number in range.',
    action: 'Fix or drop the header.',
  },
  invalid_body_encoding: {
    status: 400,
    type: 'invalid_request_error',
    meaning: 'The body could not be decoded with its `content-encoding`.',
    action: 'Send the body as declared (identity, gzip, deflate or br).',
  },
  request_aborted: {
    status: 400,
    type: 'invalid_request_error',
    meaning: 'The body was not received in full (the client left).',
    action: 'Nothing: the client is gone.',
  },
  malformed_request: {
    status: 400,
    type: 'invalid_request_error',
    meaning: "Node's HTTP parser rejected the request (not valid HTTP/1.1).",
    action: 'Fix the client.',
  },
  request_timeout: {
    status: 408,
    type: 'invalid_request_error',
    meaning:
      'JSON answer (408): the request did not arrive in full within CLIENT_BODY_TIMEOUT_MS. As a 504, or an error event ending a stream (`stream`): the request or the endpoint ran out of REQUEST_TIMEOUT_MS, a total timeout.',
    action: 'Retry; if it keeps happening, ask for less (shorter answers) or raise the timeout.',
  },
  request_too_large: {
    status: 413,
    type: 'invalid_request_error',
    meaning:
      'The body is over BODY_LIMIT (or has chunk extensions that are too large). As a 400: the tokens the request reserves (prompt estimate + max_tokens) exceed a tpm limit, so it could never pass.',
    action: 'Send less. Do not retry as it is.',
  },
  unsupported_encoding: {
    status: 415,
    type: 'invalid_request_error',
    meaning: 'The `content-encoding` is not identity, gzip, deflate or br.',
    action: 'Send the body in a supported encoding.',
  },
  request_headers_too_large: {
    status: 431,
    type: 'invalid_request_error',
    meaning: 'The request headers are over 16 KiB.',
    action: 'Send fewer or smaller headers.',
  },
  method_not_allowed: {
    status: 405,
    type: 'invalid_request_error',
    meaning: 'The route exists but not with this method (the `allow` header says which).',
    action: 'Use the method in `allow`.',
  },
  route_not_found: {
    status: 404,
    type: 'not_found_error',
    meaning: 'No such route.',
    action: 'Check the URL (the base URL ends with /v1 for OpenAI clients).',
  },
  model_not_found: {
    status: 404,
    type: 'not_found_error',
    meaning: 'No endpoint serves this model (or alias), or every endpoint said it does not have it.',
    action: 'Pick a model from GET /v1/models. Do not retry as it is.',
  },
  model_list_incomplete: {
    status: 503,
    type: 'server_error',
    meaning:
      'No endpoint whose models are known serves this model, and some endpoints have not listed their models yet (down since start, a wrong key, no /v1/models): the model may be theirs. The message gives the reason for each.',
    action:
      'Retry after `Retry-After` seconds; the operator should fix what the message names (an endpoint’s apiKey or url).',
  },
  admin_disabled: {
    status: 404,
    type: 'not_found_error',
    meaning: 'Admin routes (`/api/v1/*`) are off because ADMIN_API_KEY is not set.',
    action: 'The operator sets ADMIN_API_KEY (then restarts or reloads) to turn them on.',
  },
  // Who is asking
  missing_api_key: {
    status: 401,
    type: 'authentication_error',
    meaning: 'No `Authorization: Bearer <key>` header.',
    action: 'Send the key.',
  },
  invalid_authorization_header: {
    status: 401,
    type: 'authentication_error',
    meaning: 'The `Authorization` header is not `Bearer <key>`.',
    action: 'Send `Authorization: Bearer <key>`.',
  },
  invalid_api_key: {
    status: 401,
    type: 'authentication_error',
    meaning: 'The key is not one of the gateway’s.',
    action: 'Use a valid key. Do not retry as it is.',
  },
  model_not_allowed: {
    status: 403,
    type: 'permission_error',
    meaning: 'The key (or its team) may not use this model: it is outside the key’s or the team’s `models`.',
    action:
      'Use a model from GET /v1/models (it lists what the key may use), or ask for the key’s models to be widened.',
  },
  // Limits
  rate_limit_exceeded: {
    status: 429,
    type: 'rate_limit_error',
    meaning:
      'A requests-per-minute or tokens-per-minute limit (of the key, its team, the model or the gateway; the message says which) is reached; also too many key claims from one address in 24 h.',
    action: 'Retry after `Retry-After` seconds (the `x-ratelimit-*` headers tell what is left).',
  },
  concurrency_limit_exceeded: {
    status: 429,
    type: 'rate_limit_error',
    meaning: 'The scope (the message says which) has `maxParallel` requests in flight already.',
    action: 'Wait for a request to finish, then retry.',
  },
  insufficient_quota: {
    status: 429,
    type: 'rate_limit_error',
    meaning: 'The budget of the scope (the message says which) is spent for its period.',
    action: 'Retry when the period ends (`Retry-After`), or ask the operator to raise the budget.',
  },
  limits_unavailable: {
    status: 503,
    type: 'server_error',
    meaning:
      'Limits could not be checked (the Redis counter store is unreachable) and `limits.onStoreError` is `closed`.',
    action: 'Retry after `Retry-After` seconds; the operator should look at Redis.',
  },
  // Admin API: keys, teams, claims
  key_not_found: {
    status: 404,
    type: 'not_found_error',
    meaning: 'Admin API: no key with this id.',
    action: 'Check the id (GET /api/v1/keys lists them).',
  },
  key_revoked: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'Admin API: the key is revoked and cannot be rotated.',
    action: 'Create a new key.',
  },
  team_not_found: {
    status: 404,
    type: 'not_found_error',
    meaning: 'Admin API: no team with this id.',
    action: 'Check the id (GET /api/v1/teams lists them).',
  },
  team_exists: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'Admin API: a team with this id exists already.',
    action: 'Pick another id, or PATCH the existing team.',
  },
  team_in_use: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'Admin API: the team still has keys that are not revoked.',
    action: 'Revoke or move its keys first.',
  },
  endpoint_not_found: {
    status: 404,
    type: 'not_found_error',
    meaning: 'Admin API: no endpoint of this name was added at runtime.',
    action: 'Check the name (GET /api/v1/endpoints lists every endpoint and where it came from).',
  },
  endpoint_exists: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'Admin API: an endpoint of this name exists (added at runtime, or in the config file).',
    action: 'Pick another name, or PATCH the runtime endpoint.',
  },
  endpoint_in_config: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'Admin API: the endpoint comes from the config file, which the admin API does not edit.',
    action: 'Change it in the config file, then reload.',
  },
  limits_need_redis: {
    status: 409,
    type: 'invalid_request_error',
    meaning:
      'Admin API: the gateway runs several workers without REDIS_URL, so a limit would be counted per worker.',
    action: 'Set REDIS_URL (and restart), then create the limit.',
  },
  claims_disabled: {
    status: 404,
    type: 'not_found_error',
    meaning: 'POST /api/v1/keys/claim: permissionless keys are off (`keys.claim.enabled` is false).',
    action: 'Ask the operator for a key.',
  },
  key_exists: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'POST /api/v1/keys/claim: this identity already holds a key that works.',
    action: 'Use the key you have; claim again once it has expired.',
  },
  captcha_failed: {
    status: 403,
    type: 'permission_error',
    meaning: 'POST /api/v1/keys/claim: the captcha token is missing, or the captcha service rejected it.',
    action: 'Solve the captcha again and send its token in `x-captcha-token`.',
  },
  captcha_unavailable: {
    status: 503,
    type: 'server_error',
    meaning: 'POST /api/v1/keys/claim: the captcha service could not be reached to check the token.',
    action: 'Retry after `Retry-After` seconds.',
  },
  // The upstreams
  upstream_rejected_request: {
    status: 400,
    type: 'invalid_request_error',
    meaning:
      'An upstream rejected the request itself (400, 413, 422 or another 4xx). The status and message are the upstream’s, and so is the code when it sent one (this code stands in when it did not).',
    action: 'Fix the request as the message says (a context too long, an unknown parameter…).',
  },
  route_not_served: {
    status: 400,
    type: 'invalid_request_error',
    meaning:
      'No endpoint of the model serves this route for this request: their providers do not (Anthropic endpoints serve chat only, Gemini embeds text, not token ids).',
    action:
      'Use a model whose endpoints serve the route (GET /api/v1/providers/status shows each endpoint’s provider), or send text.',
  },
  no_endpoint_available: {
    status: 503,
    type: 'server_error',
    meaning:
      'No endpoint could answer now: they said unavailable (503, 429, 504, 408), refused the connection, or are ejected, cooling down or drained.',
    action: 'Retry after `Retry-After` seconds.',
  },
  upstream_error: {
    status: 502,
    type: 'upstream_error',
    meaning: 'The upstreams answered badly (500, 502, an error event) on every try.',
    action: 'Retry later; the operator should look at the endpoints (GET /api/v1/providers/status).',
  },
  upstream_auth_error: {
    status: 502,
    type: 'upstream_error',
    meaning: 'The upstreams rejected the gateway’s own key (401, 403): a configuration problem.',
    action: 'Tell the operator (the endpoint’s apiKey is wrong).',
  },
  upstream_redirect: {
    status: 502,
    type: 'upstream_error',
    meaning: 'The upstreams answered with a redirect: the endpoint URL is wrong (often http:// for https).',
    action: 'Tell the operator (the endpoint’s url is wrong).',
  },
  upstream_invalid_response: {
    status: 502,
    type: 'upstream_error',
    meaning:
      'The upstreams answered 200 with something that is no answer (empty, not JSON, an error object).',
    action: 'Retry later; the operator should look at the endpoints.',
  },
  first_byte_timeout: {
    status: 504,
    type: 'timeout_error',
    meaning: 'No upstream started answering within FIRST_BYTE_TIMEOUT_MS.',
    action:
      'Retry; a long prompt may need a larger timeout (`x-gateway-first-byte-timeout-ms` can only shorten it).',
  },
  connect_timeout: {
    status: 504,
    type: 'timeout_error',
    meaning: 'No upstream accepted a connection within CONNECT_TIMEOUT_MS.',
    action: 'Retry later.',
  },
  // A stream that broke after it started (status 200, the error in the last event, no [DONE])
  upstream_stream_error: {
    status: 502,
    type: 'upstream_error',
    meaning:
      'stream: the model server failed mid-answer (connection lost, an error event) and it could not be repaired.',
    action: 'Keep what arrived or ask again: the answer is incomplete.',
  },
  upstream_stream_truncated: {
    status: 502,
    type: 'upstream_error',
    meaning: 'stream: the model server closed the stream before [DONE].',
    action: 'Keep what arrived or ask again: the answer is incomplete.',
  },
  upstream_invalid_stream: {
    status: 502,
    type: 'upstream_error',
    meaning:
      'stream: the model server sent something that is no event stream (an event over 1 MiB, no line breaks).',
    action: 'Ask again; the operator should look at the endpoint.',
  },
  upstream_idle_timeout: {
    status: 504,
    type: 'timeout_error',
    meaning: 'stream: the model server sent nothing for IDLE_TIMEOUT_MS mid-answer.',
    action: 'Keep what arrived or ask again: the answer is incomplete.',
  },
  upstream_too_slow: {
    status: 504,
    type: 'timeout_error',
    meaning: 'stream: the model server stayed below MIN_BYTES_PER_SECOND.',
    action: 'Keep what arrived or ask again: the answer is incomplete.',
  },
  server_shutting_down: {
    status: 503,
    type: 'server_error',
    meaning: 'stream: the gateway stopped (SHUTDOWN_GRACE_MS ran out) before the answer ended.',
    action: 'Ask again (another replica will answer).',
  },
  // The gateway itself
  internal_error: {
    status: 500,
    type: 'server_error',
    meaning: 'A bug in the gateway (logged with its stack).',
    action: 'Retry; report it with the `x-request-id`.',
  },
  invalid_configuration: {
    status: 422,
    type: 'invalid_request_error',
    meaning: 'Admin reload: the new configuration has problems (listed); the old one stays in force.',
    action: 'Fix the configuration and reload again.',
  },
  reload_unavailable: {
    status: 409,
    type: 'invalid_request_error',
    meaning: 'Admin reload: the gateway was started without a configuration source to read again.',
    action: 'Restart the gateway instead.',
  },
} as const satisfies Record<string, { status: number; type: ErrorType; meaning: string; action: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
