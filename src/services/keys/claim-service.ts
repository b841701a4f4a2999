import { randomUUID } from 'node:crypto';
import type { ConfigSource } from '../../config/config-store.js';
import { GatewayError } from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import type { CounterStore } from '../../stores/counters/counter-store.js';
import type { Limits } from '../../stores/records/record-store.js';
import { verifyCaptcha, type CaptchaVerdict } from './captcha.js';
import type { KeyService } from './key-service.js';

const DAY_MS = 86_400_000;

export interface ClaimInput {
  identity: string | undefined;
  captchaToken: string | undefined;
  /** The client's address (X-Forwarded-For only from trusted proxies). */
  address: string;
}

export interface ClaimedKey {
  id: string;
  key: string;
  expiresAt: string | null;
  team: string;
  limits: Limits | null;
}

/**
 * Permissionless keys (the AkashChat API's "get a key" without an account): terms accepted, a captcha
 * passed when one is configured, at most one working key per identity (exact across replicas: the
 * record store decides), and at most `perIpPerDay` successful claims per client address in any 24 h
 * (exact across replicas: the counter store decides; a claim that fails afterwards is taken back).
 */
export class ClaimService {
  constructor(
    private readonly options: {
      keys: KeyService;
      counters: CounterStore;
      config: ConfigSource;
      logger: Logger;
      verify?: typeof verifyCaptcha;
      now?: () => number;
    },
  ) {}

  get enabled(): boolean {
    return this.options.config.current.keys.claim.enabled;
  }

  private async checkCaptcha(input: ClaimInput): Promise<void> {
    const { captcha } = this.options.config.current.keys.claim;
    if (!captcha) return;
    if (!input.captchaToken)
      throw new GatewayError('A captcha token is required: send it in the x-captcha-token header.', {
        code: 'captcha_failed',
      });
    const verdict: CaptchaVerdict = await (this.options.verify ?? verifyCaptcha)({
      verifyUrl: captcha.verifyUrl,
      secret: captcha.secret,
      token: input.captchaToken,
      remoteIp: input.address,
    });
    if (verdict === 'unavailable') {
      this.options.logger.warn(
        { verifyUrl: captcha.verifyUrl },
        'captcha service unreachable or answering garbage',
      );
      throw new GatewayError('The captcha could not be checked right now. Please try again shortly.', {
        code: 'captcha_unavailable',
        retryable: true,
        retryAfterSeconds: 5,
      });
    }
    if (verdict === 'failed')
      throw new GatewayError('The captcha check failed: solve it again and send the new token.', {
        code: 'captcha_failed',
      });
  }

  async claim(input: ClaimInput): Promise<ClaimedKey> {
    const settings = this.options.config.current.keys.claim;
    const { counters } = this.options;
    // The address is counted first (and given back if the claim fails), so that a refused address
    // does not use up a captcha token, which the services accept once.
    const admission = randomUUID();
    const addressKey = `claims:${addressScope(input.address)}`;
    const counted = await counters.admit(admission, [
      { kind: 'count', key: addressKey, limit: settings.perIpPerDay, windowMs: DAY_MS },
    ]);
    if (!counted.ok) {
      const seconds = Math.max(1, Math.ceil(counted.retryAfterMs / 1_000));
      throw new GatewayError(
        `Too many keys claimed from this address: at most ${settings.perIpPerDay} in 24 hours. ` +
          `Try again in ${seconds < 7_200 ? `${Math.ceil(seconds / 60)} min` : `${Math.ceil(seconds / 3_600)} h`}.`,
        { code: 'rate_limit_exceeded', retryAfterSeconds: seconds },
      );
    }
    const { ticket } = counted;
    const giveBack = () => counters.release(ticket, [addressKey]).catch(() => undefined);
    try {
      await this.checkCaptcha(input);
    } catch (err) {
      await giveBack();
      throw err;
    }
    // One identity however it is typed: `A@X.org ` and `a@x.org` are one person.
    const identity = input.identity?.trim().toLowerCase();
    let claimed;
    try {
      claimed = await this.options.keys.claim({
        team: settings.team,
        identity,
        expiresAt: (this.options.now ?? Date.now)() + settings.expiresIn,
        limits: Object.keys(settings.limits).length > 0 ? { ...settings.limits } : undefined,
        name: identity ? `claimed by ${identity}` : 'claimed',
      });
    } catch (err) {
      await giveBack();
      throw err;
    }
    if (!claimed) {
      await giveBack();
      throw new GatewayError(
        'This identity already holds a key that works: use it (a new one can be claimed once it has expired).',
        { code: 'key_exists', param: 'identity' },
      );
    }
    const { record, secret } = claimed;
    return {
      id: record.id,
      key: secret,
      expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
      team: settings.team,
      limits: record.limits,
    };
  }
}

/**
 * The address a claim is counted under: an IPv4 address as it is, an IPv6 one by its /64 (one
 * subscriber's network: counting each address of it would give anyone unlimited claims).
 */
export function addressScope(address: string): string {
  const v4 = /^(?:::ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4) return v4[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
