pub(crate) const HASH_CASES: &str = r#"
## hset, hget and the listpack order
HSET h a 1 b 2 c 3
HSET h a 10 d 4
HGET h a
HGET h zz
HGET nokey a
HMGET h a zz c
HMGET nokey a b
HGETALL h
HKEYS h
HVALS h
HLEN h
HLEN nokey
HSTRLEN h a
HSTRLEN h zz
HEXISTS h d
HEXISTS h zz
HSET h
HSET h a
HSET h a 1 b
HMSET h e 5 f 6
HMSET h e
HSETNX h a x
HSETNX h new x
HSETNX h2 f v
HGETALL h
DUMP h
TYPE h

## hdel removes the key with its last field
HSET h a 1 b 2
HDEL h a a zz
HDEL h b
EXISTS h
HDEL h b
HDEL h
HLEN h
HGETALL h
HKEYS h
TYPE h

## wrongtype both ways
SET s x
HSET h f 1
HSET s f v
HSETNX s f v
HMSET s f v
HGET s f
HMGET s f
HDEL s f
HLEN s
HSTRLEN s f
HEXISTS s f
HKEYS s
HVALS s
HGETALL s
HINCRBY s f 1
HINCRBYFLOAT s f 1
HRANDFIELD s
HRANDFIELD s 2
HRANDFIELD s 2 x
HSCAN s 0
GET h
MGET h s
APPEND h x
INCR h
DECRBY h 2
INCRBYFLOAT h 1
SETRANGE h 0 x
STRLEN h
GETRANGE h 0 -1
GETDEL h
GETEX h
GETEX h PERSIST
GETSET h x
SETNX h x
SET h y
TYPE h
GET h

## hincrby and hincrbyfloat
HINCRBY h n 5
HINCRBY h n -7
HINCRBY h n x
HINCRBY h n 1.5
HINCRBY h n ""
HSET h s abc m 9223372036854775807 neg -9223372036854775808 sp " 1"
HINCRBY h s 1
HINCRBY h sp 1
HINCRBY h m 1
HINCRBY h m 0
HINCRBY h neg -1
HINCRBY h neg 1
HINCRBYFLOAT h f 10.5
HINCRBYFLOAT h f 0.1
HINCRBYFLOAT h n 1.5e3
HINCRBYFLOAT h s 1
HINCRBYFLOAT h f inf
HINCRBYFLOAT h f -inf
HINCRBYFLOAT h f nan
HINCRBYFLOAT h f x
HINCRBYFLOAT h f ""
HINCRBYFLOAT h g 1e400
HINCRBYFLOAT h g2 0x10
HSET h big 1.18973149535723176502e+4932
HINCRBYFLOAT h big 1e4913
HINCRBYFLOAT h m 1
HGETALL h
DUMP h

## encodings convert past the thresholds, and not back
CONFIG SET hash-max-listpack-entries 4
HSET h a 1 b 2 c 3 d 4
DUMP h
HSET h e 5
HDEL h e d c b
HGETALL h
DUMP h
HSET v f yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy
DUMP v
HSET w yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP w
HINCRBYFLOAT x yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP x
HINCRBY x yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP x
HSETNX x yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP x
CONFIG SET hash-max-ziplist-entries 512
CONFIG GET hash-max-listpack-entries
CONFIG SET hash-max-listpack-value 2
HSET y a 12 b 3
DUMP y
HSET y c 123
DUMP y
CONFIG SET hash-max-listpack-value 64

## hrandfield shapes
HRANDFIELD nokey
HRANDFIELD nokey 5
HRANDFIELD nokey 5 WITHVALUES
HRANDFIELD nokey 5 x
HRANDFIELD nokey x
HRANDFIELD nokey -9223372036854775808
HRANDFIELD nokey -9223372036854775807 WITHVALUES
HRANDFIELD nokey 1 WITHVALUES extra
HSET h a 1 b 2 c 3
HRANDFIELD h 0
HRANDFIELD h 0 WITHVALUES
HRANDFIELD h 3
HRANDFIELD h 5 WITHVALUES
HRANDFIELD h -5
HRANDFIELD h -5 WITHVALUES
HRANDFIELD h 2
HRANDFIELD h 1 withvalues
HRANDFIELD h -9223372036854775807 WITHVALUES

## hscan of a listpack is one call
HSCAN nokey 0
HSCAN nokey 0 BAD
HSCAN nokey x
HSET h a 1 b 2 ab 3
HSCAN h 0
HSCAN h 0 MATCH a*
HSCAN h 0 MATCH a* COUNT 1
HSCAN h 0 COUNT 0
HSCAN h 0 COUNT x
HSCAN h 0 COUNT
HSCAN h 0 MATCH
HSCAN h 0 BAD 1
HSCAN h x
HSCAN h -1
HSCAN h 18446744073709551616
HSCAN h 7
CONFIG SET hash-max-listpack-entries 1 2

## rename and type of a hash across shards
HSET {a}h f 1 g 2
RENAME {a}h other
HGETALL other
TYPE other
SCAN 0 TYPE hash
RENAMENX other s2
SET s3 x
RENAME s2 s3
HGETALL s3
EXISTS s2
"#;
