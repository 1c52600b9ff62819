import { fileURLToPath } from "node:url";
import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

const client = fileURLToPath(new URL("../../../sdk/typescript/src/index.ts", import.meta.url));

// The Studio is served by relay serve at /studio, from ../dist embedded in
// the binary: hashed file names (cached for a year), and no inline script
// or style, so the strict Content-Security-Policy holds.
export default defineConfig({
  base: "/studio/",
  plugins: [preact()],
  resolve: { alias: { "@relay/client": client } },
  build: {
    outDir: fileURLToPath(new URL("../dist", import.meta.url)),
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: "es2022",
  },
});
