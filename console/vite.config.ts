// Builds the operator console into console/dist, served by the engine at /console.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
  // `npm run console:dev` proxies the API to an engine on :8787 (SEIGO_PORT).
  server: { proxy: { '/admin': `http://127.0.0.1:${process.env.SEIGO_PORT ?? 8787}` } },
});
