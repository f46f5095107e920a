/**
 * Request bodies that may have to be sent twice (once more with the code, or on a retry). Strings,
 * bytes, Blob, FormData and URLSearchParams are re-serialised by fetch each time. A stream can be
 * read only once: one that ends within `limit` bytes is buffered and becomes bytes; a longer one is
 * sent as it comes (its first chunks, then the rest) and marked not replayable, so the client
 * refuses to send it again instead of sending an empty or truncated body.
 */

type Body = NonNullable<RequestInit['body']>;

export interface PreparedBody {
  readonly body: Body | undefined;
  readonly replayable: boolean;
}

function isReadableStream(body: Body): body is ReadableStream<Uint8Array> {
  return typeof (body as { getReader?: unknown }).getReader === 'function';
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

export async function prepareBody(body: Body | null | undefined, limit: number): Promise<PreparedBody> {
  if (body === null || body === undefined) return { body: undefined, replayable: true };
  if (!isReadableStream(body)) {
    // Node's fetch also takes an async iterable; like a stream, it is read once.
    const once = typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
    return { body, replayable: !once };
  }
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { body: concat(chunks, length), replayable: true };
    chunks.push(value);
    length += value.length;
    if (length > limit) break;
  }
  // Too long to keep: what was read goes first, then the rest straight from the caller's stream.
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      chunks.length = 0;
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { body: rest, replayable: false };
}
