// franz-relay copies one topic from a source cluster to a target cluster with franz-go, as a user
// could write it in an afternoon: no consumer group (every partition from its start), acks=all,
// idempotent, batching tuned for throughput (linger 5 ms, 1 MB batches). A record keeps its
// partition, key, value, headers and timestamp. It runs until SIGTERM or SIGINT, then flushes.
//
// Usage: franz-relay <spec.json>; the spec names the clusters, the topics and the client security.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

type security struct {
	CA            string `json:"ca"`             // PEM CA file: TLS when set
	Cert          string `json:"cert"`           // PEM client certificate: mutual TLS
	Key           string `json:"key"`            // its PEM key (PKCS#8, unencrypted)
	SaslMechanism string `json:"sasl_mechanism"` // SCRAM-SHA-256 or SCRAM-SHA-512
	SaslUser      string `json:"sasl_username"`
	SaslPassword  string `json:"sasl_password"`
}

type cluster struct {
	Bootstrap string   `json:"bootstrap"`
	Security  security `json:"security"`
}

type spec struct {
	Source      cluster `json:"source"`
	Target      cluster `json:"target"`
	Topic       string  `json:"topic"`
	TargetTopic string  `json:"target_topic"`
	Compression string  `json:"compression"` // none, gzip, snappy, lz4 or zstd (default none)
}

var codecs = map[string]kgo.CompressionCodec{"": kgo.NoCompression(), "none": kgo.NoCompression(),
	"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(),
	"zstd": kgo.ZstdCompression()}

func connection(c cluster) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(c.Bootstrap, ",")...)}
	s := c.Security
	if s.CA != "" {
		pem, err := os.ReadFile(s.CA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", s.CA)
		}
		config := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if s.Cert != "" {
			pair, err := tls.LoadX509KeyPair(s.Cert, s.Key)
			if err != nil {
				return nil, err
			}
			config.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(config))
	}
	if s.SaslMechanism != "" {
		auth := scram.Auth{User: s.SaslUser, Pass: s.SaslPassword}
		switch s.SaslMechanism {
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(auth.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(auth.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("sasl_mechanism %q: use SCRAM-SHA-256 or SCRAM-SHA-512", s.SaslMechanism)
		}
	}
	return opts, nil
}

func clients(s spec) (*kgo.Client, *kgo.Client, error) {
	source, err := connection(s.Source)
	if err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	target, err := connection(s.Target)
	if err != nil {
		return nil, nil, fmt.Errorf("target: %w", err)
	}
	codec, known := codecs[s.Compression]
	if !known {
		return nil, nil, fmt.Errorf("compression %q: use none, gzip, snappy, lz4 or zstd", s.Compression)
	}
	consumer, err := kgo.NewClient(append(source,
		kgo.ClientID("franz-relay-consumer"),
		kgo.ConsumeTopics(s.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return nil, nil, err
	}
	producer, err := kgo.NewClient(append(target,
		kgo.ClientID("franz-relay-producer"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is franz-go's default and needs acks=all
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(codec),            // franz-go would pick snappy by itself
		kgo.RecordPartitioner(kgo.ManualPartitioner()), // a copy keeps its partition
	)...)
	if err != nil {
		consumer.Close()
		return nil, nil, err
	}
	return consumer, producer, nil
}

func run(s spec) error {
	consumer, producer, err := clients(s)
	if err != nil {
		return err
	}
	defer consumer.Close()
	defer producer.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var failed atomic.Value
	acknowledged := func(_ *kgo.Record, err error) {
		if err != nil && ctx.Err() == nil {
			failed.CompareAndSwap(nil, err)
		}
	}
	for ctx.Err() == nil {
		fetches := consumer.PollFetches(ctx)
		if err, _ := failed.Load().(error); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if ctx.Err() == nil {
				failed.CompareAndSwap(nil, fmt.Errorf("fetch %s[%d]: %w", topic, partition, err))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			// Produce blocks while the producer's buffer is full: the back-pressure of the copy
			producer.Produce(ctx, &kgo.Record{Topic: s.TargetTopic, Partition: r.Partition, Key: r.Key,
				Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}, acknowledged)
		})
	}
	flush, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := producer.Flush(flush); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: franz-relay <spec.json>")
		os.Exit(2)
	}
	var s spec
	text, err := os.ReadFile(os.Args[1])
	if err == nil {
		err = json.Unmarshal(text, &s)
	}
	if err == nil && (s.Source.Bootstrap == "" || s.Target.Bootstrap == "" || s.Topic == "" || s.TargetTopic == "") {
		err = fmt.Errorf("source.bootstrap, target.bootstrap, topic and target_topic are required")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "franz-relay: bad spec %s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	if err := run(s); err != nil {
		fmt.Fprintf(os.Stderr, "franz-relay: %v\n", err)
		os.Exit(1)
	}
}
