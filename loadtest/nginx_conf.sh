# Sourced by the load-test scripts: nginx configured as the reference reverse
# proxy they compare against (access log off, HTTP/1.1 keep-alive to the
# backend, long keep-alive on both sides).
#
# write_nginx_conf DIR LISTEN_PORT BACKEND_PORT [NAME=VALUE...]
#   writes DIR/nginx.conf (temp paths under DIR); options:
#   workers=N          worker_processes (default 2); workers=0 runs one
#                      process with master_process off (for valgrind)
#   keepalive=N        idle upstream connections kept per worker (default 256)
#   health=1           nginx answers GET /health itself with 200 "ok"
#   tls_cert=F tls_key=F
#                      the listener speaks TLS 1.2/1.3 with that pair, a
#                      shared session cache and session tickets
write_nginx_conf() {
  local dir=$1 port=$2 backend_port=$3
  shift 3
  local workers=2 keepalive=256 health="" tls_cert="" tls_key="" opt
  for opt in "$@"; do
    case $opt in
      workers=*) workers=${opt#*=} ;;
      keepalive=*) keepalive=${opt#*=} ;;
      health=*) health=${opt#*=} ;;
      tls_cert=*) tls_cert=${opt#*=} ;;
      tls_key=*) tls_key=${opt#*=} ;;
      *) echo "write_nginx_conf: unknown option $opt" >&2; return 2 ;;
    esac
  done
  mkdir -p "$dir"
  {
    if [ "$workers" = 0 ]; then echo "master_process off;"; else echo "worker_processes $workers;"; fi
    cat <<EOF
worker_rlimit_nofile 65536;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  upstream backend {
    server 127.0.0.1:$backend_port;
    keepalive $keepalive;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port${tls_cert:+ ssl} backlog=4096;
EOF
    if [ -n "$tls_cert" ]; then
      echo "    ssl_certificate $tls_cert; ssl_certificate_key $tls_key;"
      echo "    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;"
    fi
    if [ -n "$health" ]; then echo '    location = /health { return 200 "ok"; }'; fi
    cat <<EOF
    location /api/ {
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  } >"$dir/nginx.conf"
}
