import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";

/**
 * Serves one MCP session over stdin/stdout until the client goes away or a signal arrives, then
 * runs `onClose` (closing the store) exactly once. Nothing else may write to stdout.
 */
export async function serveStdio(server: Server, onClose: () => Promise<void>): Promise<void> {
  let closing: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    if (closing) return closing;
    // Assigned before server.close() runs: closing the server fires onclose again, synchronously.
    let done!: () => void;
    closing = new Promise<void>((resolve) => (done = resolve));
    void (async () => {
      await server.close().catch(() => undefined);
      await onClose().catch(() => undefined);
      done();
    })();
    return closing;
  };
  server.onclose = () => void shutdown();
  process.stdin.once("end", () => void shutdown());
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown().then(() => process.exit(0)));
  }
  await server.connect(new StdioServerTransport());
}
