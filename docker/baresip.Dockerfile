# A headless baresip desk phone for the compose demo: registers as 1001, auto-answers, plays a
# 440 Hz tone, records what it hears into /rec.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends baresip sox && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /phone /rec && sox -n -r 8000 -c 1 -b 16 /phone/tone.wav synth 30 sine 440
COPY baresip/config /phone/config
COPY baresip/accounts /phone/accounts
WORKDIR /rec
CMD ["baresip", "-f", "/phone"]
