import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../src/config/index.js";
import { isPostgresUrl, redactDatabaseUrl } from "../../src/store/database.js";
import { describePgError } from "../../src/store/postgres-open.js";

// Which engine --db names, and how a database is named in logs and messages: never with its password.

describe("--db", () => {
  it("postgres:// and postgresql:// (any case) select PostgreSQL; anything else is a SQLite path", () => {
    for (const db of ["postgres://h/db", "postgresql://u:p@h:5432/db?sslmode=require", "POSTGRES://h/db", "postgres://"]) expect(isPostgresUrl(db), db).toBe(true);
    for (const db of ["keywarden.db", ":memory:", "/srv/postgres://x", "postgres:/h/db", "./postgres", "sqlite://x", "pg://h/db"]) expect(isPostgresUrl(db), db).toBe(false);
  });

  it("resolves to one database configuration, with the pool flags' defaults, and a label without the password", () => {
    const env = {};
    expect(resolveConfig({ db: "postgres://kw:s3cret@db.internal:5432/keys", user: "a" }, env)).toMatchObject({
      database: { engine: "postgres", url: "postgres://kw:s3cret@db.internal:5432/keys", poolSize: 10, statementTimeoutMs: 5000 },
      databaseLabel: "postgres://kw:***@db.internal:5432/keys",
    });
    expect(resolveConfig({ db: "postgresql://db/keys", user: "a", pgPoolSize: "32", pgStatementTimeout: "250" }, env).database).toEqual({
      engine: "postgres",
      url: "postgresql://db/keys",
      poolSize: 32,
      statementTimeoutMs: 250,
    });
    expect(resolveConfig({ db: "/srv/kw.db", user: "a", pgPoolSize: "32" }, env)).toMatchObject({ database: { engine: "sqlite", path: "/srv/kw.db" }, databaseLabel: "/srv/kw.db" });
    expect(() => resolveConfig({ db: ":memory:", user: "a", pgPoolSize: "-1" }, env)).toThrow('--pg-pool-size / KEYWARDEN_PG_POOL_SIZE must be a positive integer, got "-1"');
    expect(() => resolveConfig({ db: ":memory:", user: "a", pgStatementTimeout: "0" }, env)).toThrow(
      '--pg-statement-timeout / KEYWARDEN_PG_STATEMENT_TIMEOUT must be a positive integer, got "0"',
    );
    // A million-slot pool was gigabytes and a V8 out-of-memory crash before (an outside tester's finding).
    expect(() => resolveConfig({ db: ":memory:", user: "a", pgPoolSize: "1000000" }, env)).toThrow(
      '--pg-pool-size / KEYWARDEN_PG_POOL_SIZE must be at most 1000, got "1000000"',
    );
    expect(resolveConfig({ db: "postgres://db/k", user: "a", pgPoolSize: "1000" }, env).database).toMatchObject({ poolSize: 1000 });
    expect(() => resolveConfig({ db: ":memory:", user: "a", pgStatementTimeout: "2147483648" }, env)).toThrow(
      '--pg-statement-timeout / KEYWARDEN_PG_STATEMENT_TIMEOUT must be at most 2147483647, got "2147483648"',
    );
  });
});

describe("redactDatabaseUrl", () => {
  it("masks a URL's password wherever it is, and leaves everything else as it was", () => {
    const cases: [string, string][] = [
      ["postgres://kw:s3cret@db:5432/keys", "postgres://kw:***@db:5432/keys"],
      ["postgresql://kw@db/keys", "postgresql://kw@db/keys"],
      ["postgres://db/keys", "postgres://db/keys"],
      ["postgres://kw:@db/keys", "postgres://kw:***@db/keys"],
      ["postgres://kw:p%40ss%3Aw@db/keys", "postgres://kw:***@db/keys"],
      // Unescaped @ or / in a password: the user info runs to the last @, so more is masked, never less.
      ["postgres://kw:p@ss/w@db/keys", "postgres://kw:***@db/keys"],
      ["postgres://kw:pw@h1:5432,h2:5433/keys?sslmode=require", "postgres://kw:***@h1:5432,h2:5433/keys?sslmode=require"],
      ["postgres://db/keys?user=kw&password=s3cret&sslmode=require", "postgres://db/keys?user=kw&password=***&sslmode=require"],
      ["/var/lib/keywarden/kw.db", "/var/lib/keywarden/kw.db"],
      [":memory:", ":memory:"],
    ];
    for (const [url, shown] of cases) expect(redactDatabaseUrl(url), url).toBe(shown);
    for (const [url, shown] of cases) for (const secret of ["s3cret", "p%40ss", "p@ss"]) if (url.includes(`:${secret}`)) expect(shown).not.toContain(secret);
  });
});

describe("describePgError", () => {
  it("gives one line: the message, the inner messages of an AggregateError, or the code; never the password", () => {
    const url = "postgres://kw:hunter2@db/keys";
    expect(describePgError(new Error("password authentication failed for user \"kw\""), url)).toBe('password authentication failed for user "kw"');
    expect(describePgError(new AggregateError([new Error("connect ECONNREFUSED ::1:5432"), new Error("connect ECONNREFUSED 127.0.0.1:5432")], ""), url)).toBe(
      "connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432",
    );
    expect(describePgError(Object.assign(new Error(""), { code: "ETIMEDOUT" }), url)).toBe("ETIMEDOUT");
    expect(describePgError(new Error("first line\n  second line with hunter2 in it"), url)).toBe("first line second line with *** in it");
  });
});
