import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";

describe.skipIf(!PG_URL)("PostgreSQL test server", () => {
  it("answers in a database of its own", async () => {
    const db = await createTestDatabase();
    const sql = postgres(db.url, { max: 1 });
    const [row] = await sql`SELECT current_database() AS name, 1 + 1 AS two`;
    await sql.end();
    await db.drop();
    expect(row!.two).toBe(2);
    expect(row!.name).toMatch(/^keywarden_test_/);
  });
});
