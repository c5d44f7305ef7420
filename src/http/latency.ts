import type { FastifyInstance } from 'fastify';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Series {
  labels: string;
  counts: number[];
  sum: number;
  count: number;
}

/** API request latency per method, route pattern and status: a Prometheus histogram. */
export class LatencyHistogram {
  private readonly series = new Map<string, Series>();

  observe(method: string, route: string, status: number, seconds: number): void {
    const labels = `method="${method}",route="${route.replace(/"/g, '')}",status="${status}"`;
    let s = this.series.get(labels);
    if (!s) {
      s = { labels, counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.series.set(labels, s);
    }
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) s.counts[i]!++;
    });
    s.sum += seconds;
    s.count++;
  }

  render(name: string): string[] {
    const out = [`# HELP ${name} API request latency in seconds.`, `# TYPE ${name} histogram`];
    for (const s of this.series.values()) {
      BUCKETS.forEach((b, i) => out.push(`${name}_bucket{${s.labels},le="${b}"} ${s.counts[i]}`));
      out.push(`${name}_bucket{${s.labels},le="+Inf"} ${s.count}`, `${name}_sum{${s.labels}} ${s.sum}`, `${name}_count{${s.labels}} ${s.count}`);
    }
    return out;
  }

  /** Records every response (by route pattern, so per-table URLs do not explode the series). */
  attach(app: FastifyInstance): void {
    app.addHook('onResponse', async (req, reply) => {
      this.observe(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    });
  }
}
