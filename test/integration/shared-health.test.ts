import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import type { SharedHealthChange } from '../../src/services/endpoints/health.js';
import { chat } from '../helpers/http.js';
import { HAS_REDIS, REDIS_URL } from '../helpers/services.js';
import { useTestBed } from '../helpers/test-bed.js';

/** Resolves once `gateway` has applied a state change for `endpoint` published by another replica. */
function heard(gateway: Gateway, endpoint: string, change: SharedHealthChange['change']): Promise<void> {
  return new Promise((resolve) => {
    const listener = (event: SharedHealthChange) => {
      if (event.endpoint !== endpoint || event.change !== change) return;
      gateway.events.off('peer-health', listener);
      resolve();
    };
    gateway.events.on('peer-health', listener);
  });
}

const LLAMA = { body: { model: 'llama', messages: [{ role: 'user', content: 'hi' }] } };

describe.runIf(HAS_REDIS)('endpoint health shared by replicas through Redis', () => {
  const bed = useTestBed();

  async function twoReplicas() {
    const primary = await bed.upstream({ name: 'primary', models: ['llama'] });
    const backup = await bed.upstream({ name: 'backup', models: ['llama'] });
    const endpoints = [
      { url: primary.url, name: 'primary', priority: 1 },
      { url: backup.url, name: 'backup', priority: 2 },
    ];
    const env = { REDIS_URL, REDIS_PREFIX: `test-${randomUUID()}:`, MAX_ATTEMPTS: '2' };
    const a = await bed.gateway({ endpoints, env });
    const b = await bed.gateway({ endpoints, env });
    return { primary, backup, a, b };
  }

  it('a 429 cooldown on one replica is skipped by the others', async () => {
    const { primary, backup, a, b } = await twoReplicas();
    primary.script({
      type: 'status',
      status: 429,
      headers: { 'retry-after': '30' },
      body: { error: { message: 'slow down' } },
    });
    const cooled = heard(b.gateway, 'primary', 'cooling-down');
    expect((await chat(a.url, a.auth, LLAMA)).status).toBe(200);
    expect(primary.requests).toHaveLength(1);
    expect(backup.requests).toHaveLength(1);
    await cooled;
    // Replica b goes straight to the backup: the primary is not asked again.
    expect((await chat(b.url, b.auth, LLAMA)).status).toBe(200);
    expect(primary.requests).toHaveLength(1);
    expect(backup.requests).toHaveLength(2);
    const status = b.gateway.registry.health.get('primary');
    expect(status.cooldownUntil).toBeGreaterThan(Date.now() + 25_000);
  });

  it('an ejection on one replica is applied by the others', async () => {
    const { primary, backup, a, b } = await twoReplicas();
    primary.script({ type: 'reset' }, { type: 'reset' }, { type: 'reset' });
    const ejected = heard(b.gateway, 'primary', 'ejected');
    for (let i = 0; i < 3; i++) expect((await chat(a.url, a.auth, LLAMA)).status).toBe(200);
    expect(a.logs.some((l) => l.msg === 'endpoint ejected' && l.endpoint === 'primary')).toBe(true);
    await ejected;
    const before = primary.requests.length;
    expect((await chat(b.url, b.auth, LLAMA)).status).toBe(200);
    expect(primary.requests).toHaveLength(before);
    expect(backup.requests.length).toBeGreaterThanOrEqual(4);
  });
});
