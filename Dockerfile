# The scheduler in a container. Build and run:
#   docker build -t ainews .
#   docker run -d --name ainews -v "$PWD:/data" -e AINEWS_SMTP__PASSWORD=... ainews
# /data holds config.toml, posts/ and (with the default SQLite storage) data/ainews.db.
FROM python:3.11-slim
WORKDIR /app
# hatch_build.py compiles locale/'s .po catalogs into the wheel's .mo files.
COPY pyproject.toml hatch_build.py README.md config.toml ./
COPY src ./src
COPY templates ./templates
COPY locale ./locale
COPY posts ./posts
COPY subscribers ./subscribers
RUN pip install --no-cache-dir '.[postgres]'
WORKDIR /data
ENV AINEWS_CONFIG=/data/config.toml PYTHONUNBUFFERED=1
# SIGTERM (docker stop) finishes the message in flight; allow it time: docker stop -t 120
STOPSIGNAL SIGTERM
CMD ["ainews", "schedule", "run"]
