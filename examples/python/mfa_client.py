#!/usr/bin/env python3
"""Calling an API behind mfa-gateway with the standard library only.

The dance: send the bearer token; on 401 with
`WWW-Authenticate: Bearer error="insufficient_user_authentication"` get a second-factor code and
send the request again with `X-MFA-Token`; keep the `X-Session-Token` the answer carries and send it
(instead of a code) until `X-Session-Expires`. 429/503 are waited out per `Retry-After`; idempotent
requests are retried on network errors and 502/503/504 after 1 s, 2 s, 4 s (+/- 500 ms), 3 times.

    MFA_BEARER=<access token> python3 mfa_client.py --base-url http://127.0.0.1:8080 \
        --code-command 'oathtool --totp --base32 -' /orders/1 /orders/2

The code comes from --code-command (its stdout), asked only when the gateway challenges. The
bearer is read from the environment, not argv, where other users could see it in `ps`. Tokens
and codes are never printed.
"""

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
RETRIES, INITIAL, MULTIPLIER, JITTER = 3, 1.0, 2.0, 0.5
MAX_WAIT = 60.0


class Session:
    token = None
    expires_at = 0  # unix seconds, as the gateway says

    def live(self):
        return self.token is not None and time.time() < self.expires_at


def send(url, method, headers, body):
    """One exchange; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def problem_code(headers, body):
    if not (headers.get("Content-Type") or "").startswith("application/problem+json"):
        return None
    try:
        return json.loads(body).get("code")
    except ValueError:
        return None


def call(base_url, method, path, bearer, session, code_command, body=None):
    url = base_url.rstrip("/") + path
    code, retries = None, 0
    while True:
        headers = {"Authorization": "Bearer " + bearer, "Accept": "application/json"}
        if code is not None:
            headers["X-MFA-Token"] = code
        elif session.live():
            headers["X-Session-Token"] = session.token
        sent_code, code = code, None  # a code is sent once: again, it would be a replay
        try:
            status, answer, data = send(url, method, headers, body)
        except OSError as error:
            if method in IDEMPOTENT and retries < RETRIES:
                retries += 1
                time.sleep(INITIAL * MULTIPLIER ** (retries - 1) + random.uniform(-JITTER, JITTER))
                continue
            raise SystemExit("%s %s: no answer (%s)" % (method, path, type(error).__name__))
        if answer.get("X-Session-Token") and answer.get("X-Session-Expires", "").isdigit():
            session.token, session.expires_at = answer["X-Session-Token"], int(answer["X-Session-Expires"])
            print("%s %s -> %d, session opened until %d" % (method, path, status, session.expires_at))
        challenge = answer.get("WWW-Authenticate") or ""
        if status == 401 and re.search(r'error="insufficient_user_authentication"', challenge):
            reason = problem_code(answer, data)
            print("%s %s -> 401 %s, asking for a code" % (method, path, reason))
            if sent_code is not None:
                raise SystemExit("the code was not accepted (%s)" % reason)
            session.token = None
            code = subprocess.run(shlex.split(code_command), check=True, capture_output=False, stdout=subprocess.PIPE, text=True).stdout.strip()
            continue
        retry_after = answer.get("Retry-After", "")
        resendable = status == 429 or method in IDEMPOTENT
        if status in (429, 502, 503, 504) and resendable and retries < RETRIES:
            wait = float(retry_after) if retry_after.isdigit() else INITIAL * MULTIPLIER ** retries + random.uniform(-JITTER, JITTER)
            if wait <= MAX_WAIT:
                retries += 1
                print("%s %s -> %d, waiting %.1f s" % (method, path, status, wait))
                time.sleep(wait)
                continue
        return status, data


def main():
    parser = argparse.ArgumentParser(description="GET paths through mfa-gateway, answering MFA challenges")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--code-command", required=True, help="prints a second-factor code on stdout")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    bearer = os.environ.get("MFA_BEARER")
    if not bearer:
        raise SystemExit("set MFA_BEARER to the access token")
    session = Session()
    for path in args.paths:
        had_session = session.live()
        status, data = call(args.base_url, "GET", path, bearer, session, args.code_command)
        via = " on the session, no code" if had_session else ""
        print("GET %s -> %d%s: %s" % (path, status, via, data.decode("utf-8", "replace")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
