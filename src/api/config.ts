/**
 * Configuration of `walletd serve`: every setting has a flag, an environment variable and a
 * key in the optional JSON config file. Precedence, strongest first: flag, environment, config
 * file, default. The table below is the single source for parsing, validation and `--help`.
 *
 * The admin token is deliberately environment-only: a flag would show up in `ps`, and a config
 * file is more likely to be checked into version control.
 */
import { readFileSync } from 'node:fs';
import { TXN_TABLE_ENTRIES_MAX } from '../core/txn-table.js';
import { ACCOUNTS_MAX } from '../core/ledger-state.js';
import { ADMIN_TOKEN_CHARS_MIN, TOKEN_CHARS_MAX } from '../auth/keys.js';
import { LOG_SCRUB_BYTES_PER_SECOND_DEFAULT } from '../engine/scrub.js';

export type ServeConfig = Readonly<{
  port: number;
  /** 'off': no binary protocol listener (HTTP only). */
  protocolPort: number | 'off';
  host: string;
  dataDir: string;
  adminToken: string | undefined;
  fsync: boolean;
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  connectionsMax: number;
  shutdownTimeoutMs: number;
  coalesceTransfers: boolean;
  logLevel: string;
  logRequests: boolean;
  snapshotEveryRecords: number | undefined;
  queueRecordsMax: number | undefined;
  expectedTransactions: number | undefined;
  maxTransactions: number | undefined;
  maxAccounts: number | undefined;
  /** MiB/s read by the log scrub after start; 'off' for none. */
  logScrubMiBPerSecond: number | 'off';
}>;

type Setting = Readonly<
  {
    key: keyof ServeConfig;
    /** `--flag`; undefined for environment-only settings. */
    flag: string | undefined;
    env: string;
    /** undefined: unset unless given (the engine picks its own default). */
    fallback: number | string | boolean | undefined;
    help: string;
  } & (
    // Every integer setting states its bounds: none is unlimited by omission.
    | { kind: 'integer'; min: number; max: number; offAllowed?: true }
    | { kind: 'string'; choices?: readonly string[]; length?: Readonly<{ min: number; max: number }>; secret?: true }
    | { kind: 'boolean' }
  )
>;

export const MIB = 1024 * 1024;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS: readonly Setting[] = [
  { key: 'port', flag: 'port', env: 'WALLET_PORT', kind: 'integer', fallback: 8080, min: 0, max: 65535, help: 'HTTP port (0 picks a free port; the bound port is logged)' },
  { key: 'protocolPort', flag: 'protocol-port', env: 'WALLET_PROTOCOL_PORT', kind: 'integer', fallback: 8081, min: 0, max: 65535, offAllowed: true, help: "binary batch protocol port on the same host (0 picks a free port; logged as protocolPort); 'off' for none, HTTP only" },
  { key: 'host', flag: 'host', env: 'WALLET_HOST', kind: 'string', fallback: '127.0.0.1', help: 'address to bind' },
  { key: 'dataDir', flag: 'data-dir', env: 'WALLET_DATA_DIR', kind: 'string', fallback: './data', help: 'data directory (log, snapshots, auth files)' },
  { key: 'adminToken', flag: undefined, env: 'WALLET_ADMIN_TOKEN', kind: 'string', fallback: undefined, length: { min: ADMIN_TOKEN_CHARS_MIN, max: TOKEN_CHARS_MAX }, secret: true, help: 'admin bearer token; generated on first start and stored in <data-dir>/auth/admin-token (0600) when unset' },
  { key: 'fsync', flag: 'fsync', env: 'WALLET_FSYNC', kind: 'boolean', fallback: true, help: 'fsync every group commit; --no-fsync only for tests and benchmarks' },
  { key: 'rateLimitPerSecond', flag: 'rate-limit', env: 'WALLET_RATE_LIMIT', kind: 'integer', fallback: 50_000, min: 1, max: 100_000_000, help: 'requests per second allowed per token (a batch counts as one)' },
  { key: 'rateLimitBurst', flag: 'rate-limit-burst', env: 'WALLET_RATE_LIMIT_BURST', kind: 'integer', fallback: 0, min: 0, max: 100_000_000, help: 'token bucket size per token; 0 means one second of --rate-limit' },
  { key: 'bodyLimitBytes', flag: 'body-limit', env: 'WALLET_BODY_LIMIT', kind: 'integer', fallback: 4 * MIB, min: 1024, max: 64 * MIB, help: 'largest request body in bytes (413 beyond)' },
  { key: 'requestTimeoutMs', flag: 'request-timeout-ms', env: 'WALLET_REQUEST_TIMEOUT_MS', kind: 'integer', fallback: 10_000, min: 100, max: 600_000, help: 'bound on receiving a request (408 beyond) and, separately, on waiting for the ledger (503 request_timeout beyond)' },
  { key: 'connectionsMax', flag: 'max-connections', env: 'WALLET_MAX_CONNECTIONS', kind: 'integer', fallback: 10_000, min: 1, max: 1_000_000, help: 'most open HTTP connections; further ones are refused' },
  { key: 'shutdownTimeoutMs', flag: 'shutdown-timeout-ms', env: 'WALLET_SHUTDOWN_TIMEOUT_MS', kind: 'integer', fallback: 20_000, min: 100, max: 29_000, help: 'on SIGTERM/SIGINT, how long in-flight requests may take before connections are cut' },
  { key: 'coalesceTransfers', flag: 'coalesce', env: 'WALLET_COALESCE', kind: 'boolean', fallback: true, help: 'merge single-transfer requests of the same event-loop tick into one engine batch' },
  { key: 'logLevel', flag: 'log-level', env: 'WALLET_LOG_LEVEL', kind: 'string', fallback: 'info', choices: LOG_LEVELS, help: 'JSON log level' },
  { key: 'logRequests', flag: 'log-requests', env: 'WALLET_LOG_REQUESTS', kind: 'boolean', fallback: true, help: 'one log line per completed request (method, route, status, ms, request id)' },
  { key: 'snapshotEveryRecords', flag: 'snapshot-every', env: 'WALLET_SNAPSHOT_EVERY', kind: 'integer', fallback: undefined, min: 1, max: Number.MAX_SAFE_INTEGER, help: 'take a snapshot after this many log records (engine default when unset)' },
  { key: 'expectedTransactions', flag: 'expected-transactions', env: 'WALLET_EXPECTED_TRANSACTIONS', kind: 'integer', fallback: undefined, min: 0, max: TXN_TABLE_ENTRIES_MAX, help: 'size the transaction-id table for this many ids when the ledger starts empty (no growth: no copying, no second array)' },
  { key: 'maxTransactions', flag: 'max-transactions', env: 'WALLET_MAX_TRANSACTIONS', kind: 'integer', fallback: undefined, min: 1, max: TXN_TABLE_ENTRIES_MAX, help: `most remembered transaction ids; new ones beyond it get 507 ledger_full (default and bound ${TXN_TABLE_ENTRIES_MAX})` },
  { key: 'maxAccounts', flag: 'max-accounts', env: 'WALLET_MAX_ACCOUNTS', kind: 'integer', fallback: undefined, min: 1, max: ACCOUNTS_MAX, help: `most customer accounts; openings beyond it get 507 ledger_full (default and bound ${ACCOUNTS_MAX})` },
  { key: 'logScrubMiBPerSecond', flag: 'log-scrub-rate', env: 'WALLET_LOG_SCRUB_RATE', kind: 'integer', fallback: LOG_SCRUB_BYTES_PER_SECOND_DEFAULT / MIB, min: 1, max: 65_536, offAllowed: true, help: "MiB/s read by the background check (at low priority) of the log frames the start's snapshot covers, which recovery does not read; 'off' for none" },
  { key: 'queueRecordsMax', flag: 'queue-records-max', env: 'WALLET_QUEUE_RECORDS_MAX', kind: 'integer', fallback: undefined, min: 1, max: 100_000_000, help: 'most records waiting in the engine queue before 503 overloaded (engine default when unset)' },
];

const CONFIG_FLAG = 'config';
const CONFIG_ENV = 'WALLET_CONFIG';

export type ParsedServeArgs =
  | Readonly<{ kind: 'help' }>
  | Readonly<{ kind: 'config'; config: ServeConfig }>
  | Readonly<{ kind: 'error'; message: string }>;

type RawValues = Map<keyof ServeConfig, { value: unknown; source: string }>;

/** Parses flags, environment and config file into a validated config (or a usage error). */
export function parseServeArgs(args: readonly string[], env: NodeJS.ProcessEnv): ParsedServeArgs {
  try {
    if (args.includes('--help') || args.includes('-h')) return { kind: 'help' };
    const flags = readFlags(args);
    const configPath = flags.configPath ?? env[CONFIG_ENV];
    const layers: RawValues[] = [
      configPath === undefined ? new Map() : readConfigFile(configPath),
      readEnvironment(env),
      flags.values,
    ];
    return { kind: 'config', config: resolve(layers) };
  } catch (error) {
    if (error instanceof ConfigError) return { kind: 'error', message: error.message };
    throw error;
  }
}

class ConfigError extends Error {}

function readFlags(args: readonly string[]): { values: RawValues; configPath: string | undefined } {
  const values: RawValues = new Map();
  let configPath: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument '${arg}'`);
    const [name, inline] = splitFlag(arg.slice(2));
    if (name === CONFIG_FLAG) {
      configPath = inline ?? takeValue(args, ++index, name);
      continue;
    }
    const negated = name.startsWith('no-') ? SETTINGS.find((s) => s.flag === name.slice(3)) : undefined;
    if (negated !== undefined && negated.kind === 'boolean' && inline === undefined) {
      values.set(negated.key, { value: false, source: `--${name}` });
      continue;
    }
    const setting = SETTINGS.find((s) => s.flag === name);
    if (setting === undefined) throw new ConfigError(`unknown option '--${name}'`);
    if (setting.kind === 'boolean' && inline === undefined) {
      values.set(setting.key, { value: true, source: `--${name}` });
      continue;
    }
    values.set(setting.key, { value: inline ?? takeValue(args, ++index, name), source: `--${name}` });
  }
  return { values, configPath };
}

function splitFlag(text: string): [string, string | undefined] {
  const equals = text.indexOf('=');
  return equals < 0 ? [text, undefined] : [text.slice(0, equals), text.slice(equals + 1)];
}

function takeValue(args: readonly string[], index: number, name: string): string {
  const value = args[index];
  if (value === undefined) throw new ConfigError(`option '--${name}' needs a value`);
  return value;
}

function readEnvironment(env: NodeJS.ProcessEnv): RawValues {
  const values: RawValues = new Map();
  for (const setting of SETTINGS) {
    const value = env[setting.env];
    if (value !== undefined && value !== '') values.set(setting.key, { value, source: setting.env });
  }
  return values;
}

/** Keys of the config file are the flag names in snake_case: {"data_dir": "/var/lib/walletd"}. */
function readConfigFile(path: string): RawValues {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  const values: RawValues = new Map();
  for (const [name, value] of Object.entries(parsed)) {
    const setting = SETTINGS.find((s) => s.flag !== undefined && fileKeyOf(s.flag) === name);
    if (setting === undefined) throw new ConfigError(`unknown key '${name}' in config file ${path}`);
    values.set(setting.key, { value, source: `${path}: ${name}` });
  }
  return values;
}

function fileKeyOf(flag: string): string {
  return flag.replaceAll('-', '_');
}

function resolve(layers: readonly RawValues[]): ServeConfig {
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    let raw: { value: unknown; source: string } | undefined;
    for (const layer of layers) raw = layer.get(setting.key) ?? raw;
    config[setting.key] = raw === undefined ? setting.fallback : convert(setting, raw.value, raw.source);
  }
  if (config['rateLimitBurst'] === 0) config['rateLimitBurst'] = config['rateLimitPerSecond'];
  return config as ServeConfig;
}

function convert(setting: Setting, value: unknown, source: string): number | string | boolean {
  switch (setting.kind) {
    case 'integer':
      return convertInteger(setting, value, source);
    case 'boolean':
      return convertBoolean(value, source);
    case 'string':
      return convertString(setting, value, source);
  }
}

function convertInteger(setting: Extract<Setting, { kind: 'integer' }>, value: unknown, source: string): number | 'off' {
  if (setting.offAllowed === true && value === 'off') return 'off';
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN;
  const { min, max } = setting;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    const choices = setting.offAllowed === true ? ` or 'off'` : '';
    throw new ConfigError(`${source}: expected an integer from ${min} to ${max}${choices}, got '${String(value)}'`);
  }
  return number;
}

function convertBoolean(value: unknown, source: string): boolean {
  if (value === true || value === 'true' || value === '1') return true;
  if (value === false || value === 'false' || value === '0') return false;
  throw new ConfigError(`${source}: expected true or false, got '${String(value)}'`);
}

function convertString(setting: Extract<Setting, { kind: 'string' }>, value: unknown, source: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${source}: expected a non-empty string`);
  if (setting.choices !== undefined && !setting.choices.includes(value)) {
    throw new ConfigError(`${source}: expected one of ${setting.choices.join(', ')}, got '${value}'`);
  }
  const length = setting.length;
  if (length !== undefined && (value.length < length.min || value.length > length.max)) {
    // A secret's value is never echoed, not even a wrong one: it may be a real token mistyped.
    const got = setting.secret === true ? `${value.length} characters` : `'${value}'`;
    throw new ConfigError(`${source}: expected ${length.min} to ${length.max} characters, got ${got}`);
  }
  return value;
}

/** The text of `walletd serve --help`, generated from SETTINGS so it cannot drift. */
export function serveHelpText(): string {
  const lines = [
    'Usage: walletd serve [options]',
    '',
    'Serves the HTTP API v1 on the embedded ledger. Precedence: flag > environment > config file > default.',
    '',
    'Options:',
    `  --${CONFIG_FLAG} FILE  (${CONFIG_ENV})`,
    '      JSON config file; keys are the option names in snake_case, e.g. {"data_dir": "/srv/walletd", "rate_limit": 20000}',
  ];
  for (const setting of SETTINGS) {
    const flag = setting.flag === undefined ? '(environment only)' : flagUsage(setting);
    const fallback = setting.fallback === undefined ? '' : `; default ${describeDefault(setting)}`;
    lines.push(`  ${flag}  (${setting.env})`, `      ${setting.help}${fallback}`);
  }
  lines.push('  --help, -h', '      this text', '');
  lines.push('Signals: SIGTERM or SIGINT stop gracefully (no new requests, in-flight ones answered, final snapshot, exit 0).');
  return lines.join('\n');
}

function flagUsage(setting: Setting): string {
  if (setting.kind === 'boolean') return `--${setting.flag} | --no-${setting.flag}`;
  return `--${setting.flag} ${setting.kind === 'integer' ? 'N' : 'VALUE'}`;
}

function describeDefault(setting: Setting): string {
  if (setting.key === 'rateLimitBurst') return '0 (one second of --rate-limit)';
  return String(setting.fallback);
}
