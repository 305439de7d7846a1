#!/usr/bin/env python3
"""Paired comparison of the guided demo's two guides (docs/demo/guided-sampling.sh).

Both guides' samples share the requested classes and the noise (seed 0), so a sample is a pair: this counts the
samples only the robust guide gets right and those only the plain one gets right, and gives McNemar's exact
two-sided p-value (binomial on the discordant pairs). It also shows how the judge labels the samples requested as
pullover (2) and shirt (6), the classes the guides confuse. Standard library only (the npz is read by hand).

Usage: python3 docs/demo/paired-agreement.py runs/guided-demo/agreement-noisy1200.json \
           runs/guided-demo/agreement-robust1200.json
       python3 docs/demo/paired-agreement.py --rows ROW_A ROW_B AGREEMENT.json...
           (any two rows, by run folder name: e.g. two samplers from the same seed)
"""
import ast
import collections
import json
import math
import struct
import sys
import zipfile

def requested_classes(npz):
    """The labels array (arr_1) of a classifier-sample npz, int64 or int32, little-endian."""
    with zipfile.ZipFile(npz) as z:
        raw = z.read(next(n for n in z.namelist() if n.startswith('arr_1')))
    header_len = struct.unpack('<H', raw[8:10])[0]
    header = ast.literal_eval(raw[10:10 + header_len].decode('latin1'))
    fmt = {'<i8': 'q', '<i4': 'i'}[header['descr']]
    data = raw[10 + header_len:]
    return list(struct.unpack('<%d%s' % (len(data) // struct.calcsize(fmt), fmt), data))


def predictions(json_files):
    """run folder name -> (npz path, the judge's top-1 class per sample) from sample-eval's JSON files."""
    out = {}
    for path in json_files:
        for row in json.load(open(path))['results']:
            out[row['file'].split('/')[-2]] = (row['file'], row['predicted'])
    return out


def mcnemar(y, pred_a, pred_b):
    """(samples only A gets right, only B gets right, McNemar's exact two-sided p) of two paired label lists."""
    right_a = [p == t for p, t in zip(pred_a, y)]
    right_b = [p == t for p, t in zip(pred_b, y)]
    only_a = sum(a and not b for a, b in zip(right_a, right_b))
    only_b = sum(b and not a for a, b in zip(right_a, right_b))
    n, k = only_a + only_b, min(only_a, only_b)
    return only_a, only_b, (min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0)


def compare_rows(a, b, json_files):
    runs = predictions(json_files)
    y = requested_classes(runs[a][0])
    if y != requested_classes(runs[b][0]):
        sys.exit(f'{a} and {b} were not asked for the same classes; the samples are not paired')
    only_a, only_b, p_value = mcnemar(y, runs[a][1], runs[b][1])
    print(f'{a} vs {b}: only {a} right {only_a}, only {b} right {only_b}, McNemar exact p = {p_value:.3f}')


def main(json_files):
    runs = predictions(json_files)
    # Every row of the plain guide (noisy1200-<sampler>-scale<s>) that the robust guide also has, in the JSON's order.
    for name, plain in runs.items():
        if not name.startswith('noisy1200-') or 'robust1200-' + name[len('noisy1200-'):] not in runs:
            continue
        scale = name[len('noisy1200-'):]
        robust = runs['robust1200-' + scale]
        y = requested_classes(plain[0])
        if y != requested_classes(robust[0]):
            sys.exit(f'{scale}: the two guides were not asked for the same classes; the samples are not paired')
        right_plain = [p == t for p, t in zip(plain[1], y)]
        right_robust = [p == t for p, t in zip(robust[1], y)]
        only_robust, only_plain, p_value = mcnemar(y, robust[1], plain[1])

        def labelled(pred, c):
            return dict(collections.Counter(p for p, t in zip(pred, y) if t == c).most_common(3))
        print(f'{scale}: agree@1 plain {sum(right_plain) / len(y):.3f}, robust {sum(right_robust) / len(y):.3f}; '
              f'only robust right {only_robust}, only plain right {only_plain}, McNemar exact p = {p_value:.3f}; '
              f'judged (class: count) pullover plain {labelled(plain[1], 2)} robust {labelled(robust[1], 2)}, '
              f'shirt plain {labelled(plain[1], 6)} robust {labelled(robust[1], 6)}')


if __name__ == '__main__':
    if len(sys.argv) < 2 or (sys.argv[1] == '--rows' and len(sys.argv) < 5):
        sys.exit(__doc__)
    if sys.argv[1] == '--rows':
        compare_rows(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main(sys.argv[1:])
