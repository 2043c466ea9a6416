import type { EventId, EventStore, StreamId } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { containsToken } from "../../keys/token.js";

// SSE resumability of a session's streams (README, "Sessions"; MCP Streamable HTTP, "Resumability
// and Redelivery"): the events kept for Last-Event-ID, and what may be sent again.

/** The `retry` field (ms) of SSE streams: how long a client waits before resuming with Last-Event-ID. */
export const SSE_RETRY_MS = 1000;

/**
 * What a resuming client may be sent again in place of `message`. A result that holds a key's
 * full value (create_api_key, rotate_api_key) went out once on its own stream; sending it again
 * would make a second copy (README: the value exists only in the response that created it). A
 * client that lost that stream gets an error for the request instead, saying what to do.
 */
export function replayableForm(message: JSONRPCMessage, text = JSON.stringify(message)): JSONRPCMessage {
  if (!("id" in message) || !("result" in message) || !containsToken(text)) return message;
  return {
    jsonrpc: "2.0",
    id: message.id,
    error: {
      code: -32000,
      message:
        "this result held a new key's full value, which keywarden sends only once, on the stream that was lost; " +
        "the key exists: find it with list_api_keys, revoke it, and create another",
    },
  };
}

/** How long an event's message is kept for a resuming client (which waits SSE_RETRY_MS). */
export const EVENT_MESSAGE_TTL_MS = 60_000;

/**
 * The events of one session's SSE streams, kept so that a client that lost a stream resumes it
 * with Last-Event-ID (MCP Streamable HTTP, "Resumability and Redelivery"). Bounded: the oldest
 * events go first, and an event no longer kept cannot be resumed from (400). A message may carry
 * a key's full value (create_api_key, rotate_api_key), which exists only in the response that
 * created it (README): each message is sent again at most once, and kept at most
 * EVENT_MESSAGE_TTL_MS; after that only its id and stream remain, so that later events of the
 * stream still resume.
 */
export class BoundedEventStore implements EventStore {
  private readonly events = new Map<EventId, { streamId: StreamId; message: JSONRPCMessage | null; size: number; storedAt: number }>();
  private seq = 0;
  private bytes = 0;

  private readonly limits: { maxEvents: number; maxBytes: number; messageTtlMs: number };

  constructor(
    limits: { maxEvents?: number; maxBytes?: number; messageTtlMs?: number } = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.limits = { maxEvents: 100, maxBytes: 256 * 1024, messageTtlMs: EVENT_MESSAGE_TTL_MS, ...limits };
  }

  get size(): number {
    return this.events.size;
  }

  /** Messages still held (not yet replayed, nor past their time). */
  get messageCount(): number {
    this.forgetOldMessages();
    let held = 0;
    for (const event of this.events.values()) if (event.message !== null) held += 1;
    return held;
  }

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    this.forgetOldMessages();
    this.seq += 1;
    const id = `${this.seq}`;
    // Priming events are stored as {} (they carry only an id): nothing to send again.
    let kept: JSONRPCMessage | null = null;
    let size = 0;
    if ("jsonrpc" in message) {
      const text = JSON.stringify(message);
      kept = replayableForm(message, text);
      size = kept === message ? text.length : JSON.stringify(kept).length;
    }
    this.events.set(id, { streamId, message: kept, size, storedAt: this.clock() });
    this.bytes += size;
    for (const [oldest, event] of this.events) {
      if (this.events.size <= this.limits.maxEvents && this.bytes <= this.limits.maxBytes) break;
      this.events.delete(oldest);
      this.bytes -= event.size;
    }
    return id;
  }

  async getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return this.events.get(eventId)?.streamId;
  }

  async replayEventsAfter(lastEventId: EventId, { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    this.forgetOldMessages();
    const last = this.events.get(lastEventId);
    if (last === undefined) throw new Error("unknown event id");
    let after = false;
    for (const [id, event] of [...this.events]) {
      if (id === lastEventId) after = true;
      else if (after && event.streamId === last.streamId && event.message !== null) {
        const message = event.message;
        this.dropMessage(event);
        await send(id, message);
      }
    }
    return last.streamId;
  }

  private dropMessage(event: { message: JSONRPCMessage | null; size: number }): void {
    event.message = null;
    this.bytes -= event.size;
    event.size = 0;
  }

  /** Events are in the order they were stored: the old ones are at the front. */
  private forgetOldMessages(): void {
    const oldest = this.clock() - this.limits.messageTtlMs;
    for (const event of this.events.values()) {
      if (event.storedAt > oldest) break;
      if (event.message !== null) this.dropMessage(event);
    }
  }
}
