// The latency plot of docs/benchmarks.md: per call, each runtime's samples
// as a box (p10–p90) with its median, on a log scale of milliseconds, in
// plain SVG (no plotting dependency for a dozen boxes).
import type { Compared } from './cri-bench.js';
import { quantile } from './stats.js';

const colors = { berth: '#1f6feb', containerd: '#8b949e' } as const;

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function latencyPlot(results: Record<string, Compared>): string {
  const calls = Object.entries(results);
  const all = calls.flatMap(([, r]) => [...r.berth.samples, ...r.containerd.samples]).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const left = 270;
  const width = 560;
  const row = 34;
  const top = 40;
  const height = top + calls.length * row + 40;
  const x = (ms: number) => left + (Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * width;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 30}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="18" font-weight="bold">Latency per call, ms (log scale): box p10–p90, bar = median, dots = min and max</text>`,
    `<rect x="${left}" y="26" width="10" height="10" fill="${colors.berth}"/><text x="${left + 14}" y="35">Berth</text>`,
    `<rect x="${left + 70}" y="26" width="10" height="10" fill="${colors.containerd}"/><text x="${left + 84}" y="35">containerd</text>`,
  ];
  for (let decade = lo; decade <= hi; decade *= 10) {
    parts.push(`<line x1="${x(decade)}" y1="${top}" x2="${x(decade)}" y2="${height - 30}" stroke="#ddd"/>`, `<text x="${x(decade)}" y="${height - 15}" text-anchor="middle">${decade >= 1 ? decade : decade.toFixed(-Math.log10(decade))}</text>`);
  }
  calls.forEach(([name, r], i) => {
    const y = top + i * row;
    parts.push(`<text x="${left - 8}" y="${y + 20}" text-anchor="end">${escape(name)}</text>`);
    (['berth', 'containerd'] as const).forEach((peer, j) => {
      const s = [...r[peer].samples].sort((a, b) => a - b);
      if (s.length === 0) return;
      const by = y + 5 + j * 13;
      const [p10, p50, p90] = [quantile(s, 0.1), quantile(s, 0.5), quantile(s, 0.9)];
      parts.push(
        `<line x1="${x(s[0]!)}" y1="${by + 5}" x2="${x(s.at(-1)!)}" y2="${by + 5}" stroke="${colors[peer]}" stroke-width="1"/>`,
        `<circle cx="${x(s[0]!)}" cy="${by + 5}" r="2" fill="${colors[peer]}"/><circle cx="${x(s.at(-1)!)}" cy="${by + 5}" r="2" fill="${colors[peer]}"/>`,
        `<rect x="${x(p10)}" y="${by}" width="${Math.max(1, x(p90) - x(p10))}" height="10" fill="${colors[peer]}" fill-opacity="0.45" stroke="${colors[peer]}"/>`,
        `<line x1="${x(p50)}" y1="${by - 1}" x2="${x(p50)}" y2="${by + 11}" stroke="black" stroke-width="2"/>`,
      );
    });
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
