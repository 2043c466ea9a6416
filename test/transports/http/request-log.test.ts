import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { RequestLog } from "../../../src/transports/http/request-log.js";

// The count shutdown waits for (README, "Shutdown") must come back to zero whether or not debug
// lines are written; with debug off, none is.

function exchange(method: string) {
  const res = Object.assign(new EventEmitter(), { statusCode: 200 });
  return { req: { method } as IncomingMessage, res: res as unknown as ServerResponse & EventEmitter };
}

describe("RequestLog", () => {
  for (const debugOn of [true, false]) {
    it(`counts requests in flight other than GET, debug ${debugOn ? "on" : "off"}`, () => {
      const lines: Record<string, unknown>[] = [];
      const log = new RequestLog({ debug: (object) => lines.push(object), error: () => undefined, isLevelEnabled: (level) => level !== "debug" || debugOn });
      const post = exchange("POST");
      const get = exchange("GET");
      log.start(post.req, post.res, "/v1/keys/verify", "127.0.0.1");
      log.start(get.req, get.res, "/healthz", "127.0.0.1");
      expect(log.inFlight).toBe(1);
      post.res.emit("close");
      get.res.emit("close");
      expect(log.inFlight).toBe(0);
      expect(lines.map((line) => [line.method, line.path, line.status])).toStrictEqual(
        debugOn ? [["POST", "/v1/keys/verify", 200], ["GET", "/healthz", 200]] : [],
      );
    });
  }

  it("writes the debug line when the logger cannot say its level", () => {
    const lines: unknown[] = [];
    const log = new RequestLog({ debug: (object) => lines.push(object), error: () => undefined });
    const post = exchange("POST");
    log.start(post.req, post.res, "/mcp", undefined);
    post.res.emit("close");
    expect([log.inFlight, lines.length]).toStrictEqual([0, 1]);
  });
});
