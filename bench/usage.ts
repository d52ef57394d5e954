/**
 * Command-line handling shared by the benchmark scripts: `--help` prints the usage, and a bad
 * option (unknown, or a value out of range) prints its message and the usage and exits 2,
 * instead of a stack trace.
 */
export function withUsage<T>(usage: string, parse: () => T): T {
  if (process.argv.slice(2).some((arg) => arg === '--help' || arg === '-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  try {
    return parse();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
}

/**
 * The integer option `--name` from parseArgs values, in [min, max]: a typo must stop the run,
 * not print NaN rates or loop forever.
 */
export function integerOption(values: Readonly<Record<string, unknown>>, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(values[name]);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(max === Number.MAX_SAFE_INTEGER ? `--${name} must be an integer ≥ ${min}` : `--${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** The value of option `--name` if it is one of `known` (typed as it), else a usage error naming them. */
export function choiceOption<T extends string>(known: readonly T[], value: string, name: string): T {
  const found = known.find((option) => option === value);
  if (found === undefined) throw new Error(`--${name}: unknown value "${value}" (${known.join(', ')})`);
  return found;
}
