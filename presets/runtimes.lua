-- Runtime catalogue for container sandboxes: plain data (see scripts/moonbox/runtimes.lua).
-- Each runtime: name, description, image (ready-made) or base_image (built), packages,
-- package_manager (pip | npm | apt | cargo), setup_commands, env_vars, work_dir, cache_image.
-- Add your own in a file that returns a list like this one and name it in MOONBOX_RUNTIMES
-- (colon-separated paths), or call moonbox.runtimes.load(path).
return {
  {
    name = "coding",
    description = "Python 3.12 with git, ripgrep, fd, jq and uv: a general coding workspace",
    base_image = "python:3.12-slim",
    setup_commands = {
      "apt-get update && apt-get install -y --no-install-recommends git curl ca-certificates ripgrep "
        .. "fd-find jq less procps && ln -sf /usr/bin/fdfind /usr/local/bin/fd && rm -rf /var/lib/apt/lists/*",
      "curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh",
    },
    work_dir = "/workspace",
  },
  {
    name = "polyglot",
    description = "Python 3.12 and Node.js with numpy, duckdb, polars and httpx",
    base_image = "python:3.12-slim",
    packages = { "numpy", "duckdb", "polars", "httpx" },
    package_manager = "pip",
    setup_commands = {
      "apt-get update && apt-get install -y --no-install-recommends curl ca-certificates git nodejs npm "
        .. "&& rm -rf /var/lib/apt/lists/*",
      "npm install -g npm@10 && npm cache clean --force",
    },
    work_dir = "/workspace",
  },
  { name = "python-minimal", description = "Python 3.12, nothing else", image = "python:3.12-slim",
    work_dir = "/workspace" },
  { name = "python-datascience", description = "Python 3.12 with pandas, numpy, matplotlib, scikit-learn, seaborn",
    base_image = "python:3.12-slim", packages = { "pandas", "numpy", "matplotlib", "scikit-learn", "seaborn" },
    package_manager = "pip", work_dir = "/workspace" },
  { name = "python-analytics", description = "Python 3.12 with duckdb, polars and pyarrow",
    base_image = "python:3.12-slim", packages = { "duckdb", "polars", "pyarrow" }, package_manager = "pip",
    work_dir = "/workspace" },
  { name = "python-web", description = "Python 3.12 with fastapi, uvicorn, sqlalchemy and httpx",
    base_image = "python:3.12-slim", packages = { "fastapi", "uvicorn", "sqlalchemy", "httpx" },
    package_manager = "pip", work_dir = "/workspace" },
  { name = "python-scraping", description = "Python 3.12 with httpx, beautifulsoup4, lxml and markdownify",
    base_image = "python:3.12-slim", packages = { "httpx", "beautifulsoup4", "lxml", "markdownify" },
    package_manager = "pip", work_dir = "/workspace" },
  { name = "python-documents", description = "Python 3.12 with pypdf, python-docx, openpyxl and pillow",
    base_image = "python:3.12-slim", packages = { "pypdf", "python-docx", "openpyxl", "pillow" },
    package_manager = "pip", work_dir = "/workspace" },
  { name = "node-minimal", description = "Node.js 20, nothing else", image = "node:20-slim", work_dir = "/app" },
  { name = "node-typescript", description = "Node.js 20 with typescript, tsx and vitest",
    base_image = "node:20-slim", packages = { "typescript", "tsx", "vitest" }, package_manager = "npm",
    work_dir = "/app" },
  { name = "node-react", description = "Node.js 20 with typescript, vite and react",
    base_image = "node:20-slim", packages = { "typescript", "vite", "react", "react-dom", "@types/react" },
    package_manager = "npm", work_dir = "/app" },
  { name = "bun", description = "Bun 1", image = "oven/bun:1-slim", work_dir = "/app" },
  { name = "deno", description = "Deno on Alpine", image = "denoland/deno:alpine", work_dir = "/app" },
  { name = "go", description = "Go 1.23 on Alpine", image = "golang:1.23-alpine", work_dir = "/src" },
  { name = "rust", description = "Rust 1", image = "rust:1-slim", work_dir = "/src" },
}
