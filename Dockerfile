# winpod: multi-stage, slim, non-root; the final image has no build tools.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY config ./config
COPY sim ./sim
RUN python -m venv /opt/winpod \
 && /opt/winpod/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/winpod/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 winpod
COPY --from=build /opt/winpod /opt/winpod
ENV PATH=/opt/winpod/bin:$PATH PYTHONUNBUFFERED=1
USER 10001
EXPOSE 3000 9090
ENTRYPOINT ["winpod"]
CMD ["serve"]
