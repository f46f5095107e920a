import type { ServerResponse } from 'node:http';

/**
 * What must run when a response closes, however it ends (answered, cut, client gone). A proxied
 * request has three watchers: the listener's count of open answers, the admission pass (metrics,
 * runtime release) and the forwarded request (abort the upstream). As three 'close' listeners they
 * cost an array that EventEmitter copies on every emit; here one shared listener calls them, in the
 * order they were added, from slots on the response.
 */
export interface CloseWatcher {
  responseClosed(res: ServerResponse): void;
}

const kFirst = Symbol('mfa-gateway.close.first');
const kSecond = Symbol('mfa-gateway.close.second');
const kThird = Symbol('mfa-gateway.close.third');
const kMore = Symbol('mfa-gateway.close.more');

type Watched = ServerResponse & {
  [kFirst]?: CloseWatcher;
  [kSecond]?: CloseWatcher;
  [kThird]?: CloseWatcher;
  [kMore]?: CloseWatcher[];
};

/** Calls `watcher.responseClosed(res)` once, when `res` emits 'close'. */
export function whenClosed(res: ServerResponse, watcher: CloseWatcher): void {
  const watched = res as Watched;
  if (watched[kFirst] === undefined) {
    watched[kFirst] = watcher;
    res.on('close', responseClosed);
  } else if (watched[kSecond] === undefined) {
    watched[kSecond] = watcher;
  } else if (watched[kThird] === undefined) {
    watched[kThird] = watcher;
  } else {
    (watched[kMore] ??= []).push(watcher);
  }
}

// Shared by every response (no closure per request): `this` is the response.
function responseClosed(this: Watched): void {
  const first = this[kFirst];
  const second = this[kSecond];
  const third = this[kThird];
  const more = this[kMore];
  this[kFirst] = this[kSecond] = this[kThird] = this[kMore] = undefined;
  first?.responseClosed(this);
  second?.responseClosed(this);
  third?.responseClosed(this);
  if (more !== undefined) for (const watcher of more) watcher.responseClosed(this);
}
