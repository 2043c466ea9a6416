/**
 * One page of a keyset listing. The store is asked for `limit + 1` rows: the extra row, if it
 * came, only says that another page exists; the cursor names the last row shown.
 */
export function pageOf<T>(rows: readonly T[], limit: number, cursorAfter: (last: T) => string): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last !== undefined ? cursorAfter(last) : null };
}

/** How many rows to ask the store for, to know whether a page of `limit` has a successor. */
export const rowsForPage = (limit: number): number => limit + 1;
