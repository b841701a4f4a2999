/**
 * The schema of the durable records, as numbered migrations applied in order at start-up by the
 * gateway itself (no separate tool to run). Each runs once: `schema_migrations` remembers which ran.
 * A migration is never edited once released; a change is a new one. Both dialects keep JSON as text
 * and times as epoch milliseconds, so that one row mapping serves both.
 */
export interface Migration {
  version: number;
  name: string;
  /** Statements, run in order inside the migrating transaction. */
  sqlite: readonly string[];
  postgres: readonly string[];
}

const keysAndTeams = (bigint: string): string[] => [
  `CREATE TABLE teams (
     id TEXT PRIMARY KEY,
     limits TEXT,
     models TEXT,
     created_at ${bigint} NOT NULL,
     updated_at ${bigint} NOT NULL
   )`,
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     hash TEXT NOT NULL UNIQUE,
     preview TEXT NOT NULL,
     name TEXT NOT NULL,
     team TEXT,
     user_id TEXT,
     models TEXT,
     expires_at ${bigint},
     limits TEXT,
     metadata TEXT,
     identity TEXT,
     created_at ${bigint} NOT NULL,
     updated_at ${bigint} NOT NULL,
     revoked_at ${bigint},
     last_used_at ${bigint}
   )`,
  'CREATE INDEX api_keys_team ON api_keys (team)',
  'CREATE INDEX api_keys_user ON api_keys (user_id)',
  'CREATE INDEX api_keys_created ON api_keys (created_at, id)',
  // One row per identity that claimed a key: the key it holds now, with that key's expiry and
  // revocation copied, so that a claim decides on this row alone (the row a concurrent claim locks).
  `CREATE TABLE key_claims (
     identity TEXT PRIMARY KEY,
     key_id TEXT NOT NULL,
     expires_at ${bigint},
     revoked_at ${bigint}
   )`,
  'CREATE INDEX key_claims_key ON key_claims (key_id)',
  // The change counter replicas poll: one row, moved by every change to a key or a team.
  `CREATE TABLE record_changes (id INTEGER PRIMARY KEY, seq ${bigint} NOT NULL)`,
  'INSERT INTO record_changes (id, seq) VALUES (1, 0)',
];

/** Endpoints added through the admin API: their settings as given (JSON), applied by every replica. */
const runtimeEndpoints = (bigint: string): string[] => [
  `CREATE TABLE runtime_endpoints (
     name TEXT PRIMARY KEY,
     spec TEXT NOT NULL,
     created_at ${bigint} NOT NULL,
     updated_at ${bigint} NOT NULL
   )`,
];

const usageLedger = (dialect: 'sqlite' | 'postgres'): string[] => {
  const big = dialect === 'sqlite' ? 'INTEGER' : 'BIGINT';
  return [
    // One row per finished request. `seq` orders rows and pages; `id` is the request id, which a
    // client may repeat (its own x-request-id), so it is no key.
    `CREATE TABLE usage_records (
       seq ${dialect === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGSERIAL PRIMARY KEY'},
       id TEXT NOT NULL,
       time ${big} NOT NULL,
       key_id TEXT,
       team TEXT,
       user_id TEXT,
       model TEXT NOT NULL,
       served_model TEXT,
       endpoint TEXT,
       stream INTEGER NOT NULL,
       status INTEGER NOT NULL,
       error_code TEXT,
       prompt_tokens ${big} NOT NULL,
       completion_tokens ${big} NOT NULL,
       estimated INTEGER NOT NULL,
       cost DOUBLE PRECISION NOT NULL,
       ttft_ms INTEGER,
       duration_ms INTEGER NOT NULL,
       attempts INTEGER NOT NULL,
       cached INTEGER NOT NULL,
       metadata TEXT
     )`,
    'CREATE INDEX usage_time ON usage_records (time)',
    'CREATE INDEX usage_key_time ON usage_records (key_id, time)',
    'CREATE INDEX usage_team_time ON usage_records (team, time)',
    'CREATE INDEX usage_model_time ON usage_records (model, time)',
  ];
};

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'keys and teams', sqlite: keysAndTeams('INTEGER'), postgres: keysAndTeams('BIGINT') },
  { version: 2, name: 'usage ledger', sqlite: usageLedger('sqlite'), postgres: usageLedger('postgres') },
  {
    version: 3,
    name: 'runtime endpoints',
    sqlite: runtimeEndpoints('INTEGER'),
    postgres: runtimeEndpoints('BIGINT'),
  },
];

export const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;
