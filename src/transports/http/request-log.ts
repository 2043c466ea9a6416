import type { IncomingMessage, ServerResponse } from "node:http";

// The request log and the count of requests in progress, for both adapters: a debug line per
// request (the path, never the query string), and what shutdown waits for (README, "Shutdown").

export interface RequestLogger {
  debug(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
  /** pino's: when it says debug is off, a request costs no timer read, closure or log object. */
  isLevelEnabled?(level: string): boolean;
}

export class RequestLog {
  /** Requests in progress other than GET (a stream or a health check: nothing to wait for). */
  inFlight = 0;

  /** Built once: the close listener of a counted request when there is no debug line to write. */
  private readonly uncount = (): void => {
    this.inFlight -= 1;
  };

  constructor(private readonly logger: RequestLogger) {}

  start(req: IncomingMessage, res: ServerResponse, path: string, ip: string | undefined): void {
    const counted = req.method !== "GET";
    if (counted) this.inFlight += 1;
    // Asked per request, as pino's level may be changed at run time.
    if (this.logger.isLevelEnabled?.("debug") === false) {
      // 'close' is emitted once per response, so `on` needs no once-wrapper.
      if (counted) res.on("close", this.uncount);
      return;
    }
    const started = performance.now();
    res.once("close", () => {
      if (counted) this.inFlight -= 1;
      this.logger.debug({ method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started), ip }, "http request");
    });
  }

  /** A fault no guard or handler answered: the detail goes to the log, the client gets INTERNAL_ERROR. */
  unexpected(error: unknown, path: string): void {
    this.logger.error({ err: error, path }, "request failed unexpectedly");
  }
}
