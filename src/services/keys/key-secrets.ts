import { createHash, randomBytes } from 'node:crypto';

/** What every virtual key starts with: a key of another format is never looked up in the store. */
export const VIRTUAL_KEY_PREFIX = 'sk-gw-';
const VIRTUAL_KEY = /^sk-gw-[A-Za-z0-9_-]{32,128}$/;

/** A new secret: the prefix and 43 characters carrying 256 random bits. */
export function newSecret(): string {
  return VIRTUAL_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** A new key id (public, unlike the secret: it names the key in the admin API and the ledger). */
export function newKeyId(): string {
  return `key_${randomBytes(12).toString('hex')}`;
}

/**
 * The stored form of a secret. SHA-256 is enough (no slow hash): the secrets carry 256 random bits, so
 * a leaked table gives nothing to guess from.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** `sk-gw-…` and the last four characters: enough to tell keys apart, never enough to use one. */
export function previewOf(secret: string): string {
  return `${VIRTUAL_KEY_PREFIX}…${secret.slice(-4)}`;
}

export function isVirtualKeyFormat(token: string): boolean {
  return VIRTUAL_KEY.test(token);
}
