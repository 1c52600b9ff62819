// The Studio's marketplace pages in a real browser against a whole relay
// server with a published template (TestStudioMarketplace in cmd/relay).
// PHASE=install: browse, search, a listing, the consent screen, install,
// run a preset. PHASE=upgrade (after 1.1.0 is published): the upgrade's
// diff and dry run, accept, roll back; usage and a budget.
//
// Environment: STUDIO_URL, ADMIN_KEY, PHASE, CHROMIUM, SCREENSHOTS.
import { chromium } from "playwright-core";

import { axe, check, env, signIn } from "./lib.mjs";

const origin = env("STUDIO_URL");
const shots = env("SCREENSHOTS");

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
try {
  page.on("pageerror", (err) => console.log(`page error: ${err.message}`));
  await signIn(page, origin, env("ADMIN_KEY"));

  if (env("PHASE") === "install") {
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Marketplace" }).click();
    await page.getByLabel("Search templates").fill("chores");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("link", { name: "Vault kit" }).click();
    await page.getByRole("heading", { name: "What the latest version may do" }).waitFor();
    const listing = await page.content();
    check(listing.includes("acme/vault 1.0.0") && listing.includes("API token"), "the listing shows the connector version and the secret it takes");
    await page.screenshot({ path: `${shots}/listing.png` });
    await axe(page, "a listing");

    await page.getByRole("link", { name: "Install…" }).click();
    const consent = page.getByRole("region", { name: "What you accept" });
    await consent.waitFor();
    const shown = await consent.textContent();
    check(shown.includes("purge runs vault.delete_item") && shown.includes("destructive") && shown.includes("API token (main.token)"),
      "the consent screen shows each preset's side effect and the secret handed over");
    await page.getByLabel("API token").fill("t0ken-from-the-studio");
    await page.screenshot({ path: `${shots}/install.png` });
    await axe(page, "the consent screen");
    await page.getByRole("button", { name: "Accept and install" }).click();
    await page.getByRole("heading", { name: "Presets", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/installation.png` });
  check(await page.getByRole("link", { name: "vault-kit.nap" }).isVisible(), "the installation lists its presets");
    await axe(page, "an installation");
    await page.getByRole("link", { name: "vault-kit.nap" }).click();
    await page.getByRole("button", { name: "Execute" }).click();
    await page.locator("[aria-live] .badge", { hasText: "succeeded" }).waitFor({ timeout: 15000 });
    check(true, "a preset of the installed template runs");
  } else {
    await page.goto(origin + "/studio/installations");
    await page.getByRole("link", { name: "vault-kit" }).click();
    await page.getByLabel("To version").fill("^1.1");
    await page.getByRole("button", { name: "Preview the upgrade" }).click();
    const up = page.getByRole("region", { name: "Upgrade" });
    await up.waitFor();
    const text = await up.textContent();
    check(text.includes("1.0.0 → 1.1.0") && text.includes("nap"), "the upgrade preview shows the versions and the preset it drops");
    check(text.includes("Dry run of recent runs"), "the upgrade preview has its dry run");
    await page.screenshot({ path: `${shots}/upgrade.png` });
    await axe(page, "an upgrade preview");
    await page.getByRole("button", { name: "Accept and upgrade" }).click();
    await page.getByRole("status").filter({ hasText: "Upgraded to 1.1.0" }).waitFor();
    await page.getByText("acme/vault-kit 1.1.0").waitFor();
    check(true, "the installation is at 1.1.0");
    await page.getByRole("button", { name: /Roll back to/ }).click();
    await page.getByRole("status").filter({ hasText: "Rolled back" }).waitFor();
    await page.getByText("acme/vault-kit 1.0.0").waitFor();
    check(true, "rolled back to 1.0.0 in one click");

    await page.goto(origin + "/studio/usage");
    await page.getByRole("img", { name: /Succeeded runs a day/ }).waitFor();
    // The template's price (25 US cents a run, in effect since long
    // before: TestStudioMarketplace) makes the preset's run a spend.
    await page.getByRole("img", { name: /Spend a day in USD: .*\$0\.25/ }).waitFor();
    await page.getByText("$0.25 spent on runs").waitFor();
    check(true, "the usage page charts runs and spend a day");
    await page.getByLabel("Days").selectOption({ label: "the last 90 days" });
    const chart = page.getByRole("img", { name: /Succeeded runs a day/ });
    await page.waitForFunction(() => document.querySelector("svg.chart")?.querySelectorAll("rect").length === 90, null, { timeout: 5000 }).catch(() => {});
    const bars = await chart.locator("rect").count();
    check(bars === 90 && / [1-9]\d*(,|$)/.test(await chart.getAttribute("aria-label")), `the last 90 days are 90 bars, the run's among them (${bars})`);
    await page.getByLabel("Workspace budget a month").fill("12.50");
    await page.getByLabel("Refuse runs past it").check();
    await page.getByRole("button", { name: "Set budget" }).click();
    await page.getByText(/of \$12\.50 this month \(hard/).waitFor();
    check(true, "a hard workspace budget is set and shown with this month's spend");
    await page.screenshot({ path: `${shots}/usage.png` });
    await axe(page, "usage and budgets");
  }
} catch (err) {
  await page.screenshot({ path: `${shots}/failure-marketplace.png` }).catch(() => {});
  throw err;
} finally {
  await browser.close();
}
