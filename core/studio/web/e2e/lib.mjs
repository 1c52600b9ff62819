// What the Studio's browser tests share: their environment, checks that
// say what they checked, and axe.
import { AxeBuilder } from "@axe-core/playwright";

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

export function check(ok, what) {
  if (!ok) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

/** axe fails the test on any serious or critical violation on page. */
export async function axe(page, name) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) console.log(`axe ${name}: ${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(" ")).join("\n  ")}`);
  check(bad.length === 0, `axe finds no serious or critical violation on ${name}`);
}

/** signIn signs in at origin's Studio with key and waits for the actions. */
export async function signIn(page, origin, key) {
  await page.goto(origin + "/studio/");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Actions" }).waitFor();
}
