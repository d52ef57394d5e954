/**
 * The error catalogue and docs/ERRORS.md must agree: every code with its wire number, HTTP status
 * and message appears in the table, and the table lists nothing else. Wire numbers are unique.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { codeOfWire, ERRORS, type ErrorCode } from '../src/core/errors.js';

function documentedRows(): Map<string, { wire: number; status: number; message: string }> {
  const text = readFileSync(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8');
  const rows = new Map<string, { wire: number; status: number; message: string }>();
  for (const line of text.split('\n')) {
    const match = /^\| `([a-z_]+)` \| (\d+) \| (\d+) \| (.+) \|$/.exec(line);
    if (match !== null) rows.set(match[1]!, { wire: Number(match[2]), status: Number(match[3]), message: match[4]! });
  }
  return rows;
}

test('docs/ERRORS.md lists exactly the catalogue', () => {
  const rows = documentedRows();
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERRORS).sort());
  for (const [code, entry] of Object.entries(ERRORS)) {
    assert.deepEqual(rows.get(code), { wire: entry.wire, status: entry.status, message: entry.message }, code);
  }
});

test('wire numbers are unique and map back to their code', () => {
  const seen = new Set<number>();
  for (const [code, entry] of Object.entries(ERRORS)) {
    assert.ok(!seen.has(entry.wire), `wire ${entry.wire} reused`);
    seen.add(entry.wire);
    assert.equal(codeOfWire(entry.wire), code as ErrorCode);
  }
});
