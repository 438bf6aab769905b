// Builds the viewer into the Python package's static folder, which spatial_viewer serves by default.
import { defineConfig } from "vite";
import { fileURLToPath } from "node:url";

const outDir = fileURLToPath(new URL("../src/spacetravlr_py/viewer/static", import.meta.url));

export default defineConfig({
  // relative asset URLs: the bundle works wherever the server mounts it
  base: "./",
  build: {
    outDir,
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // `npm run dev` talks to a spatial_viewer started on the default port
    proxy: { "/api": "http://127.0.0.1:8080" },
  },
});
