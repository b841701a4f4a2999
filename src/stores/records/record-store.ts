/**
 * The durable records port: virtual keys, teams and key claims (the usage ledger joins them later).
 * Two implementations pass one contract suite (test/contract/record-store.contract.ts): SQLite, the
 * embedded default, and PostgreSQL for several replicas. Every change to a key or a team also moves
 * the store's change counter, in the same transaction: replicas poll it to drop what they cached.
 */

/** `budget.amount` is in the price table's currency; `period` says when the spending starts again. */
export interface Budget {
  amount: number;
  period: 'day' | 'month' | 'total';
}

/** Limits of one scope (a key, a team, a model, the whole gateway); an absent field is no limit. */
export interface Limits {
  rpm?: number;
  tpm?: number;
  maxParallel?: number;
  budget?: Budget;
}

export interface KeyRecord {
  id: string;
  /** SHA-256 of the secret, hex: the secret itself is never stored. */
  hash: string;
  /** `sk-gw-…` and the secret's last 4 characters. */
  preview: string;
  name: string;
  team: string | null;
  user: string | null;
  /** Models (or aliases) the key may use; null: every model its team allows. */
  models: string[] | null;
  /** Epoch ms; null: never. */
  expiresAt: number | null;
  limits: Limits | null;
  metadata: Record<string, unknown> | null;
  /** The identity a permissionless key was claimed for. */
  identity: string | null;
  createdAt: number;
  updatedAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface TeamRecord {
  id: string;
  limits: Limits | null;
  models: string[] | null;
  createdAt: number;
  updatedAt: number;
}

/** One finished request in the usage ledger (contract: CONFIG.md, Usage and cost). */
export interface UsageRecord {
  /** The request id. */
  id: string;
  /** Epoch ms when the request finished. */
  time: number;
  keyId: string | null;
  team: string | null;
  user: string | null;
  /** The model (or alias) asked for. */
  model: string;
  servedModel: string | null;
  endpoint: string | null;
  stream: boolean;
  status: number;
  errorCode: string | null;
  promptTokens: number;
  completionTokens: number;
  /** The upstream gave no usage: the tokens are the gateway's estimate. */
  estimated: boolean;
  cost: number;
  ttftMs: number | null;
  durationMs: number;
  attempts: number;
  cached: boolean;
  metadata: Record<string, unknown> | null;
}

/** Which ledger records a usage query covers. */
export interface UsageFilter {
  /** Epoch ms, inclusive. */
  from?: number | undefined;
  /** Epoch ms, exclusive. */
  to?: number | undefined;
  keyId?: string | undefined;
  team?: string | undefined;
  model?: string | undefined;
}

export const USAGE_GROUPS = ['key', 'team', 'user', 'model', 'endpoint', 'day'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

export interface UsageTotals {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cost: number;
  cacheHits: number;
}

/** The fields of a key an update may change. */
export type KeyPatch = Partial<
  Pick<
    KeyRecord,
    | 'name'
    | 'team'
    | 'user'
    | 'models'
    | 'expiresAt'
    | 'limits'
    | 'metadata'
    | 'revokedAt'
    | 'hash'
    | 'preview'
  >
>;
export type TeamPatch = Partial<Pick<TeamRecord, 'limits' | 'models'>>;

export interface KeyFilter {
  team?: string | undefined;
  user?: string | undefined;
  /** Keys created before this key (the previous page's last id). */
  after?: string | undefined;
  limit: number;
}

export interface RecordStore {
  readonly backend: 'sqlite' | 'postgres';
  /** Where the records are, without credentials (for logs and the status route). */
  readonly location: string;

  insertKey(key: KeyRecord): Promise<void>;
  /**
   * Inserts a claimed key unless its identity already holds a key that is neither revoked nor expired at
   * `now`; false then. Atomic: two replicas claiming for one identity at once get one key between them.
   */
  claimKey(key: KeyRecord & { identity: string }, now: number): Promise<boolean>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  keyByHash(hash: string): Promise<KeyRecord | undefined>;
  /** Newest first. */
  listKeys(filter: KeyFilter): Promise<KeyRecord[]>;
  updateKey(id: string, patch: KeyPatch, now: number): Promise<KeyRecord | undefined>;
  /** Records when keys were last used (written in batches; does not move the change counter). */
  markUsed(lastUsed: ReadonlyMap<string, number>): Promise<void>;

  /** False when a team with this id exists. */
  insertTeam(team: TeamRecord): Promise<boolean>;
  getTeam(id: string): Promise<TeamRecord | undefined>;
  listTeams(): Promise<TeamRecord[]>;
  updateTeam(id: string, patch: TeamPatch, now: number): Promise<TeamRecord | undefined>;
  /** `in_use` while keys that still work at `now` (not revoked, not expired) belong to the team. */
  deleteTeam(id: string, now: number): Promise<'deleted' | 'missing' | 'in_use'>;
  /** How many keys that still work at `now` belong to a team. */
  activeKeyCount(team: string, now: number): Promise<number>;
  /** Whether any key or team has limits (several workers then need a shared counter store). */
  hasLimits(): Promise<boolean>;

  /** Endpoints added at runtime, by name. */
  listEndpoints(): Promise<RuntimeEndpointRecord[]>;
  /** False when one with this name exists. */
  insertEndpoint(record: RuntimeEndpointRecord): Promise<boolean>;
  /** Replaces an endpoint's settings; false when there is none of this name. */
  updateEndpoint(name: string, spec: Record<string, unknown>, now: number): Promise<boolean>;
  deleteEndpoint(name: string): Promise<boolean>;

  /** Appends ledger records (one batch, one transaction). */
  insertUsage(records: readonly UsageRecord[]): Promise<void>;
  /** The newest ledger records, newest first. */
  recentUsage(limit: number): Promise<UsageRecord[]>;
  /** Records matching `filter`, newest first, after the `before` cursor; each with its cursor. */
  usageRecords(
    filter: UsageFilter,
    page: { limit: number; before?: number | undefined },
  ): Promise<Array<{ cursor: number; record: UsageRecord }>>;
  /** Totals of the matching records, and per group when `groupBy` is given (by requests, most first). */
  usageSummary(
    filter: UsageFilter,
    groupBy: UsageGroup | undefined,
  ): Promise<{ totals: UsageTotals; groups: Array<{ group: string | null } & UsageTotals> }>;
  /** Deletes ledger records older than `before` (epoch ms); how many. */
  pruneUsage(before: number): Promise<number>;

  /** Moves with every change to a key, a team or a runtime endpoint, on every replica's view of the store. */
  changeCount(): Promise<number>;
  close(): Promise<void>;
}

/** An endpoint added through the admin API: its settings as given (the endpoint fields of the config). */
export interface RuntimeEndpointRecord {
  name: string;
  spec: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
}

/** `sqlite:PATH` or `postgres://…`: which backend, and where. */
export type DatabaseLocation = { backend: 'sqlite'; path: string } | { backend: 'postgres'; url: string };

export function parseDatabaseUrl(url: string): DatabaseLocation | undefined {
  const trimmed = url.trim();
  if (/^postgres(ql)?:\/\//i.test(trimmed)) return { backend: 'postgres', url: trimmed };
  const sqlite = /^sqlite:(?:\/\/)?(.+)$/i.exec(trimmed);
  if (sqlite) return { backend: 'sqlite', path: sqlite[1]! };
  return undefined;
}
