#!/bin/bash
# Runs INSIDE the chroot, in a private network namespace (lo up): starts the webapp's
# gunicorn exactly as its systemd unit would and nginx in front of it, then prints what
# they answer as KEY=VALUE lines for scripts/chroot-roles.sh to assert on.
set -u
IDENTITY=/etc/parbake/identity.json
backup=""
created=""
gunicorn_pid=""
stop() {
  [ -n "$gunicorn_pid" ] && kill "$gunicorn_pid" 2>/dev/null && wait "$gunicorn_pid" 2>/dev/null
  [ -f /run/nginx.pid ] && nginx -s stop 2>/dev/null
  if [ -n "$backup" ]; then mv -f "$backup" "$IDENTITY"; elif [ -n "$created" ]; then rm -f "$IDENTITY"; fi
}
trap stop EXIT

python3 /opt/parbake/harness/unit-exec.py /etc/systemd/system/webapp.service >/tmp/gunicorn.log 2>&1 &
gunicorn_pid=$!
nginx || echo "NGINX_START=failed"

ok=""
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null http://127.0.0.1:8000/healthz 2>/dev/null; then ok=1; break; fi
  sleep 0.5
done
if [ -z "$ok" ]; then echo "GUNICORN=down"; sed 's/^/gunicorn: /' /tmp/gunicorn.log; exit 1; fi
echo "GUNICORN=up"
echo "GUNICORN_USER=$(stat -c %U "/proc/$gunicorn_pid")"
echo "BODY_DIRECT=$(curl -fsS http://127.0.0.1:8000/)"
echo "BODY_NGINX=$(curl -fsS http://127.0.0.1:80/)"
echo "HEALTHZ_NGINX=$(curl -fsS http://127.0.0.1:80/healthz)"

# The page must read the identity per request: change it under the running server.
if [ -f "$IDENTITY" ]; then backup="$IDENTITY.live-test"; cp -p "$IDENTITY" "$backup"; else created=1; fi
mkdir -p "$(dirname "$IDENTITY")"
printf '{"stack": "otherstack", "instance_id": "i-live-change", "hostname": "x"}\n' > "$IDENTITY"
echo "BODY_CHANGED=$(curl -fsS http://127.0.0.1:80/)"
