/**
 * ISO 4217 currencies and their minor-unit exponents.
 *
 * The log stores a currency by its ISO numeric code (stable forever), never by a table index
 * that could shift when the data package is updated. The data comes from `currency-codes`
 * (pinned in the lock file); "no currency" (XXX) and the testing code (XTS) are not accepted.
 */
import { createRequire } from 'node:module';

export type Currency = Readonly<{ code: string; numeric: number; exponent: number }>;

type CurrencyCodesRecord = { code: string; number: string; digits: number };
const require = createRequire(import.meta.url);
const raw = (require('currency-codes') as { data: CurrencyCodesRecord[] }).data;

/** A currency code as regular-expression source, unanchored, for patterns that embed it (JSON Schemas). */
export const CURRENCY_CODE_SOURCE = '[A-Z]{3}';
const CURRENCY_CODE_PATTERN = new RegExp(`^${CURRENCY_CODE_SOURCE}$`);
const EXCLUDED = new Set(['XXX', 'XTS']);
const byCode = new Map<string, Currency>();
const byNumeric = new Map<number, Currency>();

for (const record of raw) {
  if (EXCLUDED.has(record.code)) continue;
  const numeric = Number(record.number);
  if (!CURRENCY_CODE_PATTERN.test(record.code) || !Number.isInteger(numeric) || numeric <= 0) continue;
  const exponent = Number.isInteger(record.digits) ? record.digits : 0;
  const currency: Currency = Object.freeze({ code: record.code, numeric, exponent });
  byCode.set(currency.code, currency);
  byNumeric.set(numeric, currency);
}

/** Exact, case-sensitive lookup: "usd" is not a currency code. */
export function currencyByCode(code: string): Currency | undefined {
  return byCode.get(code);
}

export function currencyByNumeric(numeric: number): Currency | undefined {
  return byNumeric.get(numeric);
}

export function allCurrencies(): Currency[] {
  return [...byCode.values()].sort((a, b) => a.numeric - b.numeric);
}

/** The id of the currency's external account, through which money enters and leaves. */
export function externalAccountId(code: string): string {
  return `@external:${code}`;
}
