// The soak's verdicts (bench/soak-report.ts): a series that holds is called flat, one that climbs
// over the run is called grows, and the chart draws one curve per series. `make soak` runs the
// hour itself; this checks the judge on made-up samples.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flatness, SERIES, soakMarkdown, soakSvg, type SoakRun, type SoakSample } from '../../bench/soak-report.js';

function run(rss: (t: number) => number, failed: (t: number) => number = () => 0): SoakRun {
  const samples: SoakSample[] = Array.from({ length: 40 }, (_, i) => {
    const t = i * 20;
    return {
      t,
      rssKiB: rss(t) * 1024,
      hwmKiB: 400 * 1024,
      fds: 240 + (i % 3),
      maps: { weir_frontend4: 501, weir_backend4: 5003, weir_ct4_v2: 1200 + ((i * 37) % 50), weir_ipcache4: 207 },
      healthzMs: 5 + (i % 4),
      metricsMs: 20,
      metricsLines: 400,
      node: { heapUsedMiB: 60 + (i % 5), heapTotalMiB: 90, externalMiB: 20, lagP99Ms: 12, lagMaxMs: 40 },
      traffic: {
        at: t * 1000,
        connections: { started: t * 20, ok: t * 20 - failed(t), failed: failed(t), errors: {}, windowP50Us: 300, windowP99Us: 900 },
        streams: { open: 4, sent: t * 40, received: t * 40, broken: 0, maxGapMs: 40, windowMaxGapMs: 20 },
      },
      churn: { endpointChanges: t * 50, serviceChanges: t / 10, policyChanges: t / 5, applyErrors: 0, skippedTicks: 0 },
      log: { lines: t * 70, warn: 0, error: 0, syncs: t * 10 },
      load1: 2,
    };
  });
  const config = {
    minutes: 13,
    sampleSeconds: 20,
    services: 500,
    endpointsPerService: 10,
    endpointChangesPerSecond: 50,
    policyChangeSeconds: 5,
    serviceChangeSeconds: 10,
    connectionsPerSecond: 20,
    streams: 4,
    streamIntervalMs: 100,
    pods: 200,
  };
  return { info: { command: 'test', machine: 'test', started: '2026-11-30T00:00:00Z', seconds: 800, daemonArgs: '' }, config, samples };
}

const verdict = (r: SoakRun, series: string) => flatness(r.samples).find((x) => x.series === series)?.verdict;

test('a daemon whose RSS wobbles around a level is flat; one that climbs 1 MiB a minute grows', () => {
  const flat = run((t) => 120 + 3 * Math.sin(t / 30));
  const leak = run((t) => 120 + t / 60);
  assert.equal(verdict(flat, 'daemon RSS'), 'flat');
  assert.equal(verdict(leak, 'daemon RSS'), 'grows');
  assert.ok(Math.abs(flatness(leak.samples).find((x) => x.series === 'daemon RSS')!.slopePerHour - 60) < 1, 'slope: 60 MiB an hour');
  for (const s of ['JS heap used', 'open fds', 'frontends', 'backends', 'conntrack', 'ipcache + endpoints', 'failed connections (total)'])
    assert.equal(verdict(flat, s), 'flat', s);
  assert.match(soakMarkdown(leak), /\| daemon RSS \(MiB\) \|.*\*\*grows\*\* \|/);
});

test('any failed connection during the run is not flat', () => {
  assert.equal(
    verdict(
      run(
        () => 120,
        (t) => (t > 600 ? 1 : 0),
      ),
      'failed connections (total)',
    ),
    'grows',
  );
});

test('the chart has one curve per series', () => {
  const svg = soakSvg(run(() => 120));
  assert.equal(svg.match(/<polyline /g)?.length, SERIES.length);
  assert.ok(svg.startsWith('<svg ') && svg.trimEnd().endsWith('</svg>'));
});
