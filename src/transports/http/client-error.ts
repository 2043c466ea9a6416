import type { Duplex } from "node:stream";

// Requests Node's HTTP parser refuses (obs-fold, Transfer-Encoding with Content-Length, a bad
// request line, headers too large, a request that took too long) never reach a handler: Node
// answers them itself with an empty body. These are the same answers, as JSON like every other
// error of keywarden (README, "Limits and errors").

/** The status and error body for a parser or connection error, by Node's error code. */
export function clientErrorAnswer(code: string | undefined): { status: number; reason: string; body: { error: { code: string; message: string; errors: [] } } } {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, reason: "Request Header Fields Too Large", body: errorOf("headers_too_large", "Request header fields too large") };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, reason: "Payload Too Large", body: errorOf("payload_too_large", "Payload too large: chunk extensions too large") };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, reason: "Request Timeout", body: errorOf("request_timeout", "Request timeout: the request was not received in time") };
    default:
      return { status: 400, reason: "Bad Request", body: errorOf("bad_request", "Bad Request: the request is not valid HTTP/1.1") };
  }
}

function errorOf(code: string, message: string) {
  return { error: { code, message, errors: [] as [] } };
}

/**
 * The http server's `clientError` listener. As Node's own (lib/_http_server.js socketOnError), it
 * answers only when nothing of a response has been written on the socket yet, then closes it; a
 * peer that already went away (ECONNRESET) gets nothing.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (error.code !== "ECONNRESET" && socket.writable && !inFlight?.headersSent) writeAndClose(socket, clientErrorAnswer(error.code));
  else socket.destroy();
}

/** CONNECT asks for a tunnel, which keywarden is not: 405, as JSON, then the connection closes. */
export function answerConnect(socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  writeAndClose(socket, {
    status: 405,
    reason: "Method Not Allowed",
    body: errorOf("method_not_allowed", "Method Not Allowed: keywarden is not a proxy; CONNECT is not served"),
  });
}

function writeAndClose(socket: Duplex, { status, reason, body }: { status: number; reason: string; body: unknown }): void {
  const text = JSON.stringify(body);
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
  socket.destroy();
}
