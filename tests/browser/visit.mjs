// Opens a URL in the system's Chromium (CHROMIUM, default /usr/bin/chromium), optionally
// clicks the button with the given label, follows every redirect as a browser does, and
// prints the page it ends on as JSON: {"status", "url", "title", "text", "headers"}.
//   node visit.mjs URL [--fill LABEL=VALUE]... [--click LABEL] [--screenshot FILE]
// (--fill types VALUE into the input labelled LABEL, a part of the label being enough).
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const url = args[0];
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const click = option('--click');
const fills = args.flatMap((a, i) => (a === '--fill' ? [args[i + 1]] : []));
const screenshot = option('--screenshot');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  let response = await page.goto(url, { waitUntil: 'load' });
  for (const fill of fills) {
    const at = fill.indexOf('=');
    await page.getByLabel(fill.slice(0, at)).first().fill(fill.slice(at + 1));
  }
  if (click) {
    [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('button', { name: click }).first().click(),
    ]);
  }
  if (screenshot) await page.screenshot({ path: screenshot });
  console.log(
    JSON.stringify({
      status: response?.status() ?? null,
      url: page.url(),
      title: await page.title(),
      text: await page.innerText('body'),
      headers: response ? await response.allHeaders() : {},
    }),
  );
} finally {
  await browser.close();
}
