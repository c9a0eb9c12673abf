#!/usr/bin/python3
"""What went over the wire in one page load, per HTTP/2 stream, from Chromium's own net log.

    PAGELOAD_NETLOG=/tmp/nl tests/bench/run.sh --only pageload --conditions relay --runs 1 ...
    tests/bench/netlog_streams.py /tmp/nl.*.json [--until MS]

CDP's request timeline (PAGELOAD_DUMP) shows when the page asked for a file and when it had it;
for what a 103 Early Hints preloaded, those are not wire times. The net log is: for every stream,
when its HEADERS went out, the HTTP/2 priority Chromium gave it (weight, the stream it depends
on), and when its first and last DATA bytes arrived, in ms from the document's request; plus
when each 103 arrived. One line per stream, in the order the requests went out.
"""

import argparse
import collections
import json


def streams(path, until_ms):
    log = json.load(open(path))
    names = {v: k for k, v in log['constants']['logEventTypes'].items()}
    sent, data, hints, t0 = {}, collections.defaultdict(list), [], None
    for e in log['events']:
        kind, t, p = names.get(e['type']), int(e['time']), e.get('params', {})
        key = (e['source']['id'], p.get('stream_id'))
        if kind == 'HTTP2_SESSION_SEND_HEADERS':
            fields = dict(h.split(': ', 1) for h in p.get('headers', []) if ': ' in h)
            t0 = t if t0 is None else t0
            if t - t0 <= until_ms:
                sent[key] = (t - t0, fields.get(':path', '?'), p.get('weight'), p.get('parent_stream_id'))
        elif kind == 'HTTP2_SESSION_RECV_DATA' and t0 is not None:
            data[key].append((t - t0, p.get('size', 0)))
        elif kind == 'HTTP2_SESSION_RECV_HEADERS' and t0 is not None:
            if any(h.startswith(':status: 103') for h in p.get('headers', [])):
                hints.append(t - t0)
    return sent, data, hints


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('netlog')
    ap.add_argument('--until', type=int, default=1500, help='streams requested up to this many ms (default 1500)')
    args = ap.parse_args()
    sent, data, hints = streams(args.netlog, args.until)
    print('103 Early Hints at %s ms' % (', '.join(map(str, hints)) or 'none'))
    print('%6s %-6s %-48s %9s %6s %6s %7s' % ('sent', 'stream', 'path', 'bytes', 'first', 'last', 'weight'))
    for key, (t, path, weight, parent) in sorted(sent.items(), key=lambda kv: kv[1][0]):
        got = data.get(key, [])
        first, last = (got[0][0], got[-1][0]) if got else ('-', '-')
        print('%6d s%-5s %-48s %9d %6s %6s %4s<s%s' % (t, key[1], path[-48:], sum(n for _, n in got), first, last,
                                                     weight, parent))


if __name__ == '__main__':
    main()
