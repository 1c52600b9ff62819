// The Studio in a real browser (Debian's chromium, driven by
// playwright-core) against a real server, as TestStudio in core/httpapi
// runs it. It exits 1 at the first check that fails, saying which.
//
// Environment: STUDIO_URL (the server's origin), ADMIN_KEY, DEVELOPER_KEY,
// VIEWER_KEY, SECRET (a connection secret that must never reach the page),
// CHROMIUM (the browser), SCREENSHOTS (a folder for the main pages').
import { chromium } from "playwright-core";

import { axe, check, env, signIn as signInAt } from "./lib.mjs";

const origin = env("STUDIO_URL");
const shots = env("SCREENSHOTS");

async function api(key, path) {
  const resp = await fetch(origin + path, { headers: { Authorization: `Bearer ${key}` } });
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.json();
}

const signIn = (page, key) => signInAt(page, origin, key);

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  const seen = []; // every response body the page received
  page.on("response", async (r) => {
    try {
      seen.push(await r.text());
    } catch {
      // a redirect or an event stream still open has no body to read
    }
  });
  const cspViolations = [];
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) cspViolations.push(m.text());
  });

  // A cold load: the sign-in form, interactive.
  const start = Date.now();
  await page.goto(origin + "/studio/");
  await page.getByLabel("API key").waitFor();
  console.log(`figure: first page interactive ${Date.now() - start} ms after a cold load`);
  await page.screenshot({ path: `${shots}/signin.png` });
  await axe(page, "the sign-in page");

  // A wrong key is refused; the right one signs in and is kept for the tab
  // only.
  await page.getByLabel("API key").fill("rly_nope_nope");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "does not know this key" }).waitFor();
  check(true, "a wrong key is refused");
  await signIn(page, env("DEVELOPER_KEY"));
  const stored = await page.evaluate(() => ({ local: JSON.stringify(localStorage), url: location.href }));
  check(!stored.local.includes("rly_") && !stored.url.includes("rly_"), "the key is in neither localStorage nor the URL");
  await page.screenshot({ path: `${shots}/actions.png` });
  await axe(page, "the actions list");

  // The schema form: a number field, validated as the server would, then
  // a run that goes live from running to succeeded.
  await page.getByLabel("Filter").fill("slow");
  await page.getByRole("link", { name: "vault.slow" }).click();
  await page.getByRole("heading", { name: "Sleeps" }).waitFor();
  await page.getByRole("button", { name: "Execute" }).click();
  await page.locator("#f_ms-error", { hasText: "required" }).waitFor();
  check(true, "a required field left empty is flagged at the field, and nothing is sent");
  await page.getByLabel("ms").fill("1500");
  await page.screenshot({ path: `${shots}/action.png` });
  await axe(page, "an action's form");
  await page.getByRole("button", { name: "Execute" }).click();
  await page.getByRole("heading", { name: /Run of/ }).waitFor();
  const early = await page.locator("[aria-live] .badge").textContent();
  check(early === "queued" || early === "running", `the run opens before it ends (${early})`);
  await page.locator("[aria-live] .badge", { hasText: "succeeded" }).waitFor({ timeout: 15000 });
  check((await page.content()).includes("slept_ms"), "the run's output shows, live, once it succeeded");
  await page.screenshot({ path: `${shots}/run.png` });
  await axe(page, "a run");

  // Echo takes any object: edited as JSON; a double click runs once.
  await page.goto(origin + "/studio/actions/echo.echo");
  const marker = `double-${Date.now()}`;
  await page.getByLabel("Input (a JSON object)").fill(`{"marker": "${marker}"}`);
  await page.getByRole("button", { name: "Execute" }).dblclick();
  await page.getByRole("heading", { name: /Run of/ }).waitFor();
  await page.locator("[aria-live] .badge", { hasText: "succeeded" }).waitFor({ timeout: 15000 });
  const runs = await api(env("DEVELOPER_KEY"), "/v1/runs?action=echo.echo&limit=200");
  const mine = runs.data.filter((r) => JSON.stringify(r.params).includes(marker));
  check(mine.length === 1, `a double click on Execute made ${mine.length} run(s), want 1`);
  await page.goto(origin + "/studio/actions/echo.echo");
  await page.getByLabel("Input (a JSON object)").fill("[1, 2");
  await page.getByRole("button", { name: "Execute" }).click();
  await page.getByText("not valid JSON").waitFor();
  check(true, "JSON that does not parse is refused at its field before anything is sent");

  // A destructive action: nothing runs before its preview is in view and
  // confirmed.
  await page.goto(origin + "/studio/actions/vault.delete_item");
  await page.getByLabel("id").fill("item-9");
  const confirm = page.getByRole("button", { name: "Confirm and execute" });
  check(await confirm.isDisabled(), "Confirm and execute waits for a preview");
  await page.getByRole("button", { name: "Preview" }).click();
  const preview = page.getByRole("region", { name: "Preview" });
  await preview.waitFor();
  check((await preview.textContent()).includes("item-9"), "the preview shows what would be deleted");
  await page.screenshot({ path: `${shots}/confirm.png` });
  await axe(page, "a destructive action's confirmation");
  await confirm.click();
  await page.locator("[aria-live] .badge", { hasText: "succeeded" }).waitFor({ timeout: 15000 });
  check(true, "the confirmed destructive action ran");

  // The runs list follows the runs in view that have not ended.
  const queued = await fetch(origin + "/v1/actions/vault.slow/execute", {
    method: "POST",
    headers: { Authorization: `Bearer ${env("DEVELOPER_KEY")}`, "Content-Type": "application/json", "Idempotency-Key": `live-${Date.now()}` },
    body: JSON.stringify({ params: { ms: 2500 }, mode: "async" }),
  }).then((r) => r.json());
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Runs" }).click();
  const row = page.getByRole("row").filter({ hasText: queued.id });
  const before = await row.locator(".badge").textContent();
  await row.locator(".badge", { hasText: "succeeded" }).waitFor({ timeout: 15000 });
  check(before !== "succeeded", `a run in the list goes from ${before} to succeeded without a reload`);

  // The runs list, filtered.
  await page.getByLabel("Status").selectOption("succeeded");
  await page.getByRole("cell", { name: "vault.delete_item" }).first().waitFor();
  await page.screenshot({ path: `${shots}/runs.png` });
  await axe(page, "the runs list");

  // The palette, by keyboard alone: Ctrl-K, a few letters, arrows, Enter.
  await page.keyboard.press("Control+K");
  const palette = page.getByRole("dialog", { name: "Go to" });
  await palette.waitFor();
  await axe(page, "the command palette");
  check(await palette.getByRole("combobox").evaluate((el) => el === document.activeElement), "the palette's input has the focus");
  await page.keyboard.type("vslow");
  await page.getByRole("option", { name: /^Action vault\.slow/ }).waitFor();
  const first = await palette.getByRole("option").first().textContent();
  check(first.startsWith("Action vault.slow"), `the palette ranks vault.slow first for vslow (first: ${first})`);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Sleeps" }).waitFor();
  check((await palette.count()) === 0, "Enter goes to the action and closes the palette");
  await page.keyboard.press("Control+K");
  await page.keyboard.type("runs");
  // The palette's lists load while it is open: wait until the page ranks
  // first, as it must for "runs", before moving and choosing.
  for (let i = 0; i < 100 && !/^Page\s*Runs/.test((await palette.getByRole("option").first().textContent()) ?? ""); i++) await page.waitForTimeout(100);
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Runs" }).waitFor();
  await page.keyboard.press("Control+K");
  await palette.waitFor();
  await page.keyboard.press("Escape");
  check((await palette.count()) === 0, "Escape closes the palette");

  // Health: the golden signals from the server's own metrics.
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Health" }).click();
  await page.getByRole("heading", { name: "Traffic" }).waitFor();
  await page.getByText(/req\/s$/).waitFor({ timeout: 15000 });
  check(true, "the health page shows traffic, errors, latency and saturation");
  await page.screenshot({ path: `${shots}/health.png` });
  await axe(page, "the health page");

  // The CSP: a script injected inline does not run.
  await page.addScriptTag({ content: "window.__injected = true" }).catch(() => {});
  check((await page.evaluate(() => window.__injected)) === undefined, "an injected inline script does not run");
  check(cspViolations.length > 0, "the browser reports the blocked inline script");

  // An admin: a connection made with a secret that is sent once and never
  // shown, a key shown once, the audit log exported.
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, env("ADMIN_KEY"));
  await page.goto(origin + "/studio/connections/new");
  await page.getByLabel("Connector").selectOption("vault");
  await page.getByLabel("Name").fill("vault-two");
  await page.getByLabel("region").fill("eu");
  const typed = "typed-in-secret-" + Date.now();
  await page.getByLabel("token").fill(typed);
  await axe(page, "the connection form");
  await page.getByRole("button", { name: "Create and check" }).click();
  await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
  check((await page.locator("#secret-token").inputValue()) === "", "the secret's field is empty once saved");
  check(await page.getByText("set", { exact: true }).isVisible(), "the secret shows as set");
  check(!(await page.content()).includes(typed) && !seen.some((b) => b.includes(typed)), "the typed secret is in no page and no response after save");
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Connections" }).click();
  await page.getByRole("link", { name: "vault-two" }).waitFor();
  await page.screenshot({ path: `${shots}/connections.png` });
  await axe(page, "the connections list");

  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Keys" }).click();
  await page.getByLabel("Name").fill("from-the-studio");
  await page.getByLabel("Role").selectOption("viewer");
  await page.getByRole("button", { name: "Create key" }).click();
  const fresh = await page.locator("code.secret").textContent();
  check(fresh.startsWith("rly_"), "the new key is shown");
  const works = await fetch(origin + "/v1/workspace", { headers: { Authorization: `Bearer ${fresh}` } });
  check(works.ok, "the key shown works");
  await axe(page, "the keys page");
  await page.getByRole("button", { name: "I have kept it" }).click();
  await page.reload();
  await page.getByRole("cell", { name: "from-the-studio", exact: true }).waitFor();
  check(!(await page.content()).includes(fresh), "the new key is not shown again");

  await page.goto(origin + `/studio/runs/${queued.id}`);
  await page.getByRole("link", { name: "its audit records" }).click();
  await page.getByRole("cell", { name: `run:${queued.id}` }).first().waitFor();
  const targets = await page.locator("tbody tr td:nth-child(4)").allTextContents();
  check(targets.length === 2 && targets.every((t) => t === `run:${queued.id}`), `a run links to its audit records (${targets.length}: started, success)`);
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Audit" }).click();
  await page.getByLabel("Filter").fill("");
  await page.getByRole("cell", { name: "action.execute" }).first().waitFor();
  await page.getByLabel("Outcome").selectOption("failure");
  await page.getByLabel("Outcome").selectOption("");
  await page.screenshot({ path: `${shots}/audit.png` });
  await axe(page, "the audit log");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export (NDJSON)" }).click()]);
  const exported = await (await import("node:fs/promises")).readFile(await download.path(), "utf8");
  const lines = exported.trim().split("\n").map((l) => JSON.parse(l));
  check(lines.length > 5 && lines.every((r) => r.hash && r.seq), `the export holds the log as NDJSON (${lines.length} records)`);

  // The settings: each retention the server's default until set; a value
  // out of bounds is refused before it is sent; a change saved shows as
  // the workspace's own; the whole workspace exported.
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Settings" }).click();
  await page.getByRole("heading", { name: "Retention" }).waitFor();
  const runsBox = page.getByRole("group", { name: "Keep ended runs" });
  const auditBox = page.getByRole("group", { name: "Keep audit records" });
  const idemBox = page.getByRole("group", { name: "Remember idempotency keys" });
  for (const box of [runsBox, auditBox, idemBox]) check(await box.getByLabel("the server's default").isChecked(), "a retention starts as the server's default");
  check((await idemBox.getByLabel("hours").inputValue()) === "24", "the idempotency keys' default shows 24 hours");
  await page.screenshot({ path: `${shots}/settings.png` });
  await axe(page, "the settings page");
  await runsBox.getByLabel("the server's default").uncheck();
  await runsBox.getByLabel("days").fill("30");
  await auditBox.getByLabel("the server's default").uncheck();
  await auditBox.getByLabel("days").fill("4000");
  await page.getByRole("button", { name: "Save retention" }).click();
  check(await auditBox.getByLabel("days").evaluate((el) => !el.checkValidity()), "4000 days is refused by the form");
  let ws = await api(env("ADMIN_KEY"), "/v1/workspace");
  check(ws.run_retention_default && ws.audit_retention_default, "nothing was changed by the refused form");
  await auditBox.getByLabel("days").fill("400");
  await page.getByRole("button", { name: "Save retention" }).click();
  await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  ws = await api(env("ADMIN_KEY"), "/v1/workspace");
  check(ws.run_retention_days === 30 && !ws.run_retention_default && ws.audit_retention_days === 400 && ws.idempotency_retention_default, `the retention saved (${JSON.stringify(ws)})`);
  await page.reload();
  await page.getByRole("heading", { name: "Retention" }).waitFor();
  check(!(await runsBox.getByLabel("the server's default").isChecked()) && (await runsBox.getByLabel("days").inputValue()) === "30", "the saved retention shows after a reload");
  const [archive] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export the workspace" }).click()]);
  const tgz = await (await import("node:fs/promises")).readFile(await archive.path());
  check(tgz.length > 100 && tgz[0] === 0x1f && tgz[1] === 0x8b && archive.suggestedFilename().endsWith(".tar.gz"), `the workspace's export is a gzip download (${tgz.length} bytes, ${archive.suggestedFilename()})`);

  // A viewer sees no control that would be refused.
  await page.getByRole("button", { name: "Sign out" }).click();
  await signIn(page, env("VIEWER_KEY"));
  await page.goto(origin + "/studio/actions/vault.delete_item");
  await page.getByText("Your key is a viewer's").waitFor();
  check((await page.getByRole("button", { name: /Execute|Preview/ }).count()) === 0, "a viewer sees no Preview or Execute");

  // A phone's screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const small = await phone.newPage();
  await signIn(small, env("DEVELOPER_KEY"));
  for (const [path, ready] of [["/studio/", "Actions"], ["/studio/runs", "Runs"], ["/studio/connections", "Connections"], ["/studio/health", "Health"]]) {
    if (path !== "/studio/") {
      await small.goto(origin + path);
      await small.getByRole("heading", { name: ready, exact: true }).waitFor();
    }
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    check(overflow <= 0, `the ${ready.toLowerCase()} page fits a 390-wide screen (overflow ${overflow}px)`);
  }
  await small.goto(origin + "/studio/");
  await small.getByRole("heading", { name: "Actions" }).waitFor();
  await small.screenshot({ path: `${shots}/phone-actions.png` });

  // The connection's secret never reached the page.
  const secret = env("SECRET");
  check(!seen.some((body) => body.includes(secret)) && !(await page.content()).includes(secret), "no response and no page holds the connection's secret");
  await page.goto(origin + "/studio/keys");
  await page.getByText("Your key is").or(page.getByRole("heading", { name: "Not found" })).waitFor();
  check((await page.getByRole("button", { name: "Create key" }).count()) === 0, "a viewer has no keys page");

  // 10,000 runs: the list reads cursor pages of 50, never the whole list,
  // and its controls work from the keyboard.
  const busy = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await signIn(busy, env("BUSY_KEY"));
  const asked = [];
  busy.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/v1/runs") asked.push(u.searchParams);
  });
  const rows = busy.locator("tbody tr");
  let t0 = Date.now();
  await busy.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Runs" }).click();
  await rows.nth(49).waitFor();
  console.log(`figure: 10,000 runs, first page shown in ${Date.now() - t0} ms`);
  check((await rows.count()) === 50 && asked.length === 1 && asked[0].get("limit") === "50", "10,000 runs: the list shows a page of 50, read in one request");
  // Tab to "Load more" and press Enter.
  let tabs = 0;
  while (tabs < 200 && (await busy.evaluate(() => document.activeElement?.textContent)) !== "Load more") {
    await busy.keyboard.press("Tab");
    tabs++;
  }
  t0 = Date.now();
  await busy.keyboard.press("Enter");
  await rows.nth(99).waitFor();
  console.log(`figure: 10,000 runs, the next page added in ${Date.now() - t0} ms`);
  check((await rows.count()) === 100 && asked.length === 2 && asked[1].get("cursor") && asked[1].get("limit") === "50",
    `Load more, reached with the keyboard (${tabs} tabs), reads the next page of 50 by its cursor`);
  await busy.getByLabel("Created").selectOption({ label: "the last hour" });
  await busy.waitForFunction(() => document.querySelectorAll("tbody tr").length === 50);
  const since = Date.parse(asked.at(-1)?.get("since") ?? "");
  check(asked.length === 3 && Math.abs(Date.now() - 3600e3 - since) < 60e3, "the time filter asks for runs created in the last hour");
  await axe(busy, "the runs list of a busy workspace");
} finally {
  await browser.close();
}
