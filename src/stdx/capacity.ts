/**
 * Growth of typed arrays that hold the ledger's state: by half, not double, because at 10M
 * accounts doubling would strand hundreds of MB in unused capacity.
 */
export function grownCapacity(current: number, needed: number): number {
  return Math.max(needed, Math.ceil(current * 1.5));
}
