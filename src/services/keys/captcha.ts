import { request } from 'undici';

export type CaptchaVerdict = 'passed' | 'failed' | 'unavailable';

const VERIFY_TIMEOUT_MS = 5_000;

/**
 * Checks a captcha token the way reCAPTCHA, hCaptcha and Cloudflare Turnstile all accept: a form POST
 * of `secret`, `response` and `remoteip` to the service's verify URL, answered `{"success": true}`.
 * The service being unreachable or answering garbage is `unavailable`, not the client's failure.
 */
export async function verifyCaptcha(input: {
  verifyUrl: string;
  secret: string;
  token: string;
  remoteIp: string | undefined;
}): Promise<CaptchaVerdict> {
  const form = new URLSearchParams({ secret: input.secret, response: input.token });
  if (input.remoteIp) form.set('remoteip', input.remoteIp);
  try {
    const res = await request(input.verifyUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      headersTimeout: VERIFY_TIMEOUT_MS,
      bodyTimeout: VERIFY_TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (res.statusCode >= 500) return 'unavailable';
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return 'unavailable';
    }
    return (json as { success?: unknown } | null)?.success === true ? 'passed' : 'failed';
  } catch {
    return 'unavailable';
  }
}
