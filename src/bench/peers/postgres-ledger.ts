/**
 * The PostgreSQL peer ledger: the textbook design the write-up starts from. Accounts and
 * transfers are rows; each transfer is one SQL transaction (one call of a PL/pgSQL function, so
 * one round trip) that inserts the unique transfer id, locks both accounts in id order, debits
 * with a balance guard and credits. With synchronous_commit = on, a transfer is acknowledged
 * only after its commit record is fsynced (PostgreSQL groups concurrent commits into one fsync,
 * as walletd does).
 *
 * Result codes are walletd's wire codes (src/core/errors.ts), and a transfer id is remembered
 * with its first outcome, so a retry returns that outcome and never moves money twice.
 */
import pg from 'pg';
import { assert } from '../../stdx/assert.js';
import { Wire } from '../../core/errors.js';
import { amountInRange } from '../../core/money.js';
import { pidsByName } from '../process-stats.js';
import type { PeerLedger, PeerTransfer } from './peer-ledger.js';

export const POSTGRES_CLIENTS_DEFAULT = 16;
export const POSTGRES_CLIENTS_MAX = 90; // the machine's server allows 100 connections
/** Rows per INSERT when opening accounts, and ids per ANY($1) when reading balances. */
const ROWS_PER_STATEMENT = 50_000;
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export type PostgresLedgerOptions = Readonly<{
  connectionString: string;
  /** A schema of its own, created fresh (dropped first if it exists) and dropped by close(). */
  schema: string;
  clients?: number;
  /** synchronous_commit = on (true) or off (false). */
  durable: boolean;
}>;

type Pending = { transfer: PeerTransfer; resolve: (code: number) => void; reject: (error: unknown) => void };

export class PostgresLedger implements PeerLedger {
  readonly durability: string;
  private readonly idle: pg.Client[] = [];
  private readonly queue: Pending[] = [];
  private readonly transferSql: string;

  private constructor(
    private readonly clients: pg.Client[],
    private readonly schema: string,
    durable: boolean,
  ) {
    this.idle.push(...clients);
    this.transferSql = `SELECT ${schema}.transfer($1, $2, $3, $4, $5) AS code`;
    this.durability = durable ? 'synchronous_commit=on (fsync per group commit)' : 'synchronous_commit=off (no fsync wait)';
  }

  static async open(options: PostgresLedgerOptions): Promise<PostgresLedger> {
    assert(SCHEMA_PATTERN.test(options.schema), 'schema name must be a plain lower-case identifier');
    const count = options.clients ?? POSTGRES_CLIENTS_DEFAULT;
    assert(Number.isInteger(count) && count >= 1 && count <= POSTGRES_CLIENTS_MAX, 'client count out of range');
    const clients: pg.Client[] = [];
    try {
      for (let index = 0; index < count; index++) {
        const client = new pg.Client({ connectionString: options.connectionString });
        clients.push(client);
        await client.connect();
        await client.query(`SET synchronous_commit = ${options.durable ? 'on' : 'off'}`);
      }
      const first = clients[0];
      assert(first !== undefined);
      await createSchema(first, options.schema);
    } catch (error) {
      await Promise.allSettled(clients.map((client) => client.end()));
      throw error;
    }
    return new PostgresLedger(clients, options.schema, options.durable);
  }

  /** Opens accounts with an opening balance each (setup, not measured). */
  async openAccounts(accountIds: readonly string[], currencyNumeric: number, balancesMinor: readonly bigint[]): Promise<void> {
    assert(accountIds.length === balancesMinor.length);
    const client = this.anyClient();
    for (let start = 0; start < accountIds.length; start += ROWS_PER_STATEMENT) {
      const ids = accountIds.slice(start, start + ROWS_PER_STATEMENT);
      const balances = balancesMinor.slice(start, start + ROWS_PER_STATEMENT).map(String);
      await client.query(
        `INSERT INTO ${this.schema}.accounts (id, currency, balance) SELECT id, $2, balance FROM unnest($1::text[], $3::bigint[]) AS t(id, balance)`,
        [ids, currencyNumeric, balances],
      );
    }
  }

  /** One transfer, one transaction, on the next free connection; resolves with a wire code. */
  transfer(transfer: PeerTransfer): Promise<number> {
    if (amountInRange(transfer.amountMinor) === undefined) return Promise.resolve(Wire.invalid_amount);
    return new Promise<number>((resolve, reject) => {
      const client = this.idle.pop();
      if (client === undefined) this.queue.push({ transfer, resolve, reject });
      else this.run(client, { transfer, resolve, reject });
    });
  }

  /**
   * Answers every transfer still waiting for a connection with `code` instead of running it;
   * transfers already running finish. Returns how many were dropped.
   */
  cancelQueued(code: number): number {
    const dropped = this.queue.splice(0);
    for (const pending of dropped) pending.resolve(code);
    return dropped.length;
  }

  async transfers(transfers: readonly PeerTransfer[]): Promise<Uint8Array> {
    return Uint8Array.from(await Promise.all(transfers.map((t) => this.transfer(t))));
  }

  /** Every postgres process: backends, WAL writer, checkpointer (the server is all of them). */
  async serverPids(): Promise<number[]> {
    return pidsByName('postgres');
  }

  async balances(accountIds: readonly string[]): Promise<Map<string, bigint>> {
    const client = this.anyClient();
    const found = new Map<string, bigint>();
    for (let start = 0; start < accountIds.length; start += ROWS_PER_STATEMENT) {
      const ids = accountIds.slice(start, start + ROWS_PER_STATEMENT);
      const result = await client.query<{ id: string; balance: string }>(
        `SELECT id, balance FROM ${this.schema}.accounts WHERE id = ANY($1::text[])`,
        [ids],
      );
      for (const row of result.rows) found.set(row.id, BigInt(row.balance));
    }
    return found;
  }

  async totalBalanceMinor(): Promise<bigint> {
    const result = await this.anyClient().query<{ total: string | null }>(`SELECT sum(balance)::text AS total FROM ${this.schema}.accounts`);
    return BigInt(result.rows[0]?.total ?? '0');
  }

  /** Transfers remembered, by result code. */
  async transferCounts(): Promise<Map<number, number>> {
    const result = await this.anyClient().query<{ code: number; n: string }>(
      `SELECT code, count(*) AS n FROM ${this.schema}.transfers GROUP BY code`,
    );
    return new Map(result.rows.map((row) => [row.code, Number(row.n)]));
  }

  async close(): Promise<void> {
    // Transfers still waiting for a connection are refused; running ones finish before end().
    for (const pending of this.queue.splice(0)) pending.reject(new Error('postgres ledger closed'));
    try {
      await this.anyClient().query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    } finally {
      await Promise.allSettled(this.clients.map((client) => client.end()));
    }
  }

  private anyClient(): pg.Client {
    const client = this.clients[0];
    assert(client !== undefined);
    return client;
  }

  private run(client: pg.Client, pending: Pending): void {
    const t = pending.transfer;
    client
      .query<{ code: number }>({
        name: 'walletd_peer_transfer',
        text: this.transferSql,
        values: [t.transactionId, t.fromAccount, t.toAccount, t.amountMinor.toString(), t.currencyNumeric],
      })
      .then((result) => {
        const code = result.rows[0]?.code;
        assert(typeof code === 'number', 'transfer() returned no code');
        pending.resolve(code);
      }, pending.reject)
      .finally(() => {
        const next = this.queue.shift();
        if (next === undefined) this.idle.push(client);
        else this.run(client, next);
      });
  }
}

async function createSchema(client: pg.Client, schema: string): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.query(`
    CREATE TABLE ${schema}.accounts (
      id text PRIMARY KEY,
      currency integer NOT NULL,
      balance bigint NOT NULL CHECK (balance >= 0)
    )`);
  await client.query(`
    CREATE TABLE ${schema}.transfers (
      id text PRIMARY KEY,
      from_id text NOT NULL,
      to_id text NOT NULL,
      amount bigint NOT NULL CHECK (amount > 0),
      currency integer NOT NULL,
      code integer NOT NULL
    )`);
  await client.query(transferFunctionSql(schema));
}

/** Codes are walletd's: 0 ok, 1 insufficient funds, 2 currency mismatch, 3 same account, 4 account not found, 5 overflow. */
function transferFunctionSql(schema: string): string {
  return `
    CREATE FUNCTION ${schema}.transfer(p_id text, p_from text, p_to text, p_amount bigint, p_currency integer)
    RETURNS integer LANGUAGE plpgsql AS $fn$
    DECLARE
      v_code integer;
      v_row record;
      v_from_currency integer;
      v_from_balance bigint;
      v_to_currency integer;
      v_to_balance bigint;
    BEGIN
      -- The unique id first: a concurrent duplicate waits here for the first to commit, then
      -- finds it and returns its outcome instead of moving money again.
      INSERT INTO ${schema}.transfers (id, from_id, to_id, amount, currency, code)
        VALUES (p_id, p_from, p_to, p_amount, p_currency, 0)
        ON CONFLICT (id) DO NOTHING;
      IF NOT FOUND THEN
        SELECT code INTO v_code FROM ${schema}.transfers WHERE id = p_id;
        RETURN v_code;
      END IF;
      IF p_from = p_to THEN
        v_code := 3;
      ELSE
        -- Both rows locked in id order, so opposite transfers cannot deadlock.
        FOR v_row IN SELECT id, currency, balance FROM ${schema}.accounts
                     WHERE id IN (p_from, p_to) ORDER BY id FOR UPDATE LOOP
          IF v_row.id = p_from THEN
            v_from_currency := v_row.currency; v_from_balance := v_row.balance;
          ELSE
            v_to_currency := v_row.currency; v_to_balance := v_row.balance;
          END IF;
        END LOOP;
        IF v_from_currency IS NULL OR v_to_currency IS NULL THEN
          v_code := 4;
        ELSIF v_from_currency <> p_currency OR v_to_currency <> p_currency THEN
          v_code := 2;
        ELSIF v_to_balance > 9223372036854775807 - p_amount THEN
          v_code := 5;
        ELSE
          -- The balance guard: the debit happens only if the money is there.
          UPDATE ${schema}.accounts SET balance = balance - p_amount WHERE id = p_from AND balance >= p_amount;
          IF FOUND THEN
            UPDATE ${schema}.accounts SET balance = balance + p_amount WHERE id = p_to;
            RETURN 0;
          END IF;
          v_code := 1;
        END IF;
      END IF;
      UPDATE ${schema}.transfers SET code = v_code WHERE id = p_id;
      RETURN v_code;
    END
    $fn$`;
}
