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

  async claim(input: ClaimInput): Promise<ClaimedKey> {
    const settings = this.options.config.current.keys.claim;
    const { captcha } = settings;
    if (captcha) {
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

    const { counters } = this.options;
    const admission = randomUUID();
    const addressKey = `claims:${input.address}`;
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
    let claimed;
    try {
      claimed = await this.options.keys.claim({
        team: settings.team,
        identity: input.identity,
        expiresAt: (this.options.now ?? Date.now)() + settings.expiresIn,
        limits: Object.keys(settings.limits).length > 0 ? { ...settings.limits } : undefined,
        name: input.identity ? `claimed by ${input.identity}` : 'claimed',
      });
    } catch (err) {
      await counters.release(admission, [addressKey]).catch(() => undefined);
      throw err;
    }
    if (!claimed) {
      await counters.release(admission, [addressKey]).catch(() => undefined);
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
