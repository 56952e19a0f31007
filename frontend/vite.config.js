// Builds the pipeline editor island into ../static/editor/ with fixed file names (no hashes), so that
// templates/pipelines/editor.html references them stably and the committed bundle is reproducible:
// CI rebuilds it and fails when it differs from what is committed.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";

export default defineConfig({
  plugins: [react()],
  base: "/static/editor/",
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: fileURLToPath(new URL("../static/editor", import.meta.url)),
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    reportCompressedSize: false,
    // elkjs (~1.5 MB) is a chunk of its own, loaded on the first auto-layout only.
    chunkSizeWarningLimit: 1600,
    cssCodeSplit: false,
    rollupOptions: {
      input: fileURLToPath(new URL("./src/main.jsx", import.meta.url)),
      output: {
        entryFileNames: "editor.js",
        chunkFileNames: "editor-[name].js",
        assetFileNames: "editor[extname]",
      },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.js"] },
});
