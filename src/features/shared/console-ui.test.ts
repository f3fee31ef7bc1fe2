import { describe, expect, it } from 'vitest';
import { Pager } from './console-ui.js';

/** The pager's words and links, rendered as the pages render them (hono's JSX to a string). */
const html = async (props: Parameters<typeof Pager>[0]) => String(await Pager(props));
const href = (o: number) => `/requests?q=printer&offset=${o}`;

describe('Pager', () => {
  it('says an exact total and links only to pages that exist', async () => {
    const first = await html({ offset: 0, limit: 50, total: 120, href });
    expect(first).toContain('1–50 of 120');
    expect(first).toContain('href="/requests?q=printer&amp;offset=50"');
    expect(first).not.toContain('Previous');
    const last = await html({ offset: 100, limit: 50, total: 120, href });
    expect(last).toContain('101–120 of 120');
    expect(last).toContain('Previous');
    expect(last).not.toContain('Next');
    expect(await html({ offset: 0, limit: 50, total: 12, href })).toBe('null');
  });

  it('a capped count says "+" and still offers the next page at its end', async () => {
    const end = await html({ offset: 950, limit: 50, total: 1000, capped: true, href });
    expect(end).toContain('951–1,000 of 1,000+');
    expect(end).toContain('href="/requests?q=printer&amp;offset=1000"');
  });
});
