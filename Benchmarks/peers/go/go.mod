module corral.bench/peers

go 1.19
