# Shared by up.sh and test.sh (sourced).
# redis_answers HOST PORT: true if a Redis there answers PING (bash's /dev/tcp, no redis-cli needed).
redis_answers() {
  (exec 3<>"/dev/tcp/$1/$2" && printf 'PING\r\n' >&3 && IFS= read -r -t 2 line <&3 && [[ "$line" == +PONG* ]]) 2>/dev/null
}
