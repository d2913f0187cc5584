import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The workbench is served by `cfp dev` at `/` on the API's own origin; `npm run dev` proxies the
// API to a running `cfp dev` (CFP_API, default http://127.0.0.1:8080).
const api = process.env.CFP_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 900,
  },
  server: {
    proxy: { "/v1": { target: api, ws: true }, "/p": api, "/health": api },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
