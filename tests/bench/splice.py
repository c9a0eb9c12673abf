#!/usr/bin/python3
"""Copies the summary of a benchmark run into README.md.

    tests/bench/splice.py [RESULTS_MD] [README]

Takes what lies between <!-- summary:start --> and <!-- summary:end --> in RESULTS_MD (default
tests/bench/results/latest.md) and puts it between <!-- bench:start --> and <!-- bench:end --> in
README (default README.md at the repository root), replacing what was there. Nothing else in the
README changes.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def between(text, start, end, what):
    try:
        i = text.index(start) + len(start)
        j = text.index(end, i)
    except ValueError:
        sys.exit('%s: markers %s ... %s not found' % (what, start, end))
    return i, j


def main():
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / 'tests' / 'bench' / 'results' / 'latest.md'
    readme = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / 'README.md'
    source = results.read_text()
    i, j = between(source, '<!-- summary:start -->', '<!-- summary:end -->', results)
    summary = source[i:j].strip('\n')
    # Image and file links in the summary are relative to the results directory.
    text = readme.read_text()
    i, j = between(text, '<!-- bench:start -->', '<!-- bench:end -->', readme)
    new = text[:i] + '\n' + summary + '\n' + text[j:]
    if new != text:
        readme.write_text(new)
        print('%s: benchmark section updated from %s' % (readme, results))
    else:
        print('%s: already up to date' % readme)


if __name__ == '__main__':
    main()
