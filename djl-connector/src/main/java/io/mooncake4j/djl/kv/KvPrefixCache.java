package io.mooncake4j.djl.kv;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Whole blocks of prompts' KV caches kept after their requests end, keyed by the tokens they and
 * every block before them hold (a chain, as vLLM's prefix caching): position {@code i}'s keys and
 * values depend only on tokens {@code [0, i]}, so a later prompt starting with the same blocks of
 * tokens can reuse them and ask prefill only for the rest. The cache holds one reference per
 * cached block; it evicts least recently used leaves that nobody else references. Thread safe.
 */
public final class KvPrefixCache {
    private final BlockAllocator allocator;
    private final int blockTokens;
    private final int maxBlocks;
    private final Node root = new Node(null, null, -1);
    private int size;
    private long clock;
    private long hits;
    private long hitBlocks;
    private long lookups;

    private static final class Node {
        final Node parent;
        final Key key;
        final int block;
        final Map<Key, Node> children = new HashMap<>();
        long lastUsed;

        Node(Node parent, Key key, int block) {
            this.parent = parent;
            this.key = key;
            this.block = block;
        }
    }

    private record Key(int[] tokens) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key && Arrays.equals(tokens, ((Key) o).tokens);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(tokens);
        }

        @Override
        public String toString() {
            return Arrays.toString(tokens);
        }
    }

    /**
     * A cache over a pool's allocator.
     *
     * @param allocator the pool's allocator
     * @param blockTokens positions per block
     * @param maxBlocks the most blocks the cache keeps
     */
    public KvPrefixCache(BlockAllocator allocator, int blockTokens, int maxBlocks) {
        this.allocator = allocator;
        this.blockTokens = blockTokens;
        this.maxBlocks = maxBlocks;
    }

    /**
     * The blocks of the longest cached prefix of {@code tokens[0, maxTokens)}, in whole blocks,
     * each retained once for the caller, who releases them when done.
     *
     * @param tokens the prompt
     * @param maxTokens how many of its positions may come from the cache
     * @return the block ids, possibly empty
     */
    public synchronized int[] match(int[] tokens, int maxTokens) {
        lookups++;
        List<Integer> found = new ArrayList<>();
        Node n = root;
        long now = ++clock;
        for (int b = 0; (b + 1) * blockTokens <= Math.min(maxTokens, tokens.length); b++) {
            Node child = n.children.get(key(tokens, b));
            if (child == null) {
                break;
            }
            child.lastUsed = now;
            found.add(child.block);
            n = child;
        }
        int[] ids = found.stream().mapToInt(Integer::intValue).toArray();
        allocator.retain(ids);
        if (ids.length > 0) {
            hits++;
            hitBlocks += ids.length;
        }
        return ids;
    }

    /**
     * Caches the whole blocks of a prompt's positions {@code [0, numTokens)}, held in the first
     * blocks of {@code blocks}; blocks already cached for the same tokens are kept as they are.
     *
     * @param tokens the prompt
     * @param numTokens the positions whose keys and values the blocks hold
     * @param blocks the request's block table
     */
    public synchronized void insert(int[] tokens, int numTokens, int[] blocks) {
        int full = Math.min(Math.min(numTokens, tokens.length) / blockTokens, blocks.length);
        Node n = root;
        long now = ++clock;
        for (int b = 0; b < full; b++) {
            Key k = key(tokens, b);
            Node child = n.children.get(k);
            if (child == null) {
                if (size >= maxBlocks && evictLocked(1, n) == 0) {
                    return;
                }
                allocator.retain(blocks, b, 1);
                child = new Node(n, k, blocks[b]);
                n.children.put(k, child);
                size++;
            }
            child.lastUsed = now;
            n = child;
        }
    }

    /**
     * Drops least recently used cached blocks that no request references until {@code wanted}
     * blocks were freed or none is left to drop.
     *
     * @param wanted blocks to free
     * @return blocks freed
     */
    public synchronized int evict(int wanted) {
        return evictLocked(wanted, null);
    }

    private int evictLocked(int wanted, Node keep) {
        int freed = 0;
        while (freed < wanted) {
            Node victim = null;
            for (Node leaf : leaves()) {
                if (leaf != keep && allocator.refCount(leaf.block) == 1
                        && (victim == null || leaf.lastUsed < victim.lastUsed)) {
                    victim = leaf;
                }
            }
            if (victim == null) {
                break;
            }
            victim.parent.children.remove(victim.key);
            allocator.release(new int[] {victim.block});
            size--;
            freed++;
        }
        return freed;
    }

    private List<Node> leaves() {
        List<Node> out = new ArrayList<>();
        List<Node> stack = new ArrayList<>(root.children.values());
        while (!stack.isEmpty()) {
            Node n = stack.remove(stack.size() - 1);
            if (n.children.isEmpty()) {
                out.add(n);
            } else {
                stack.addAll(n.children.values());
            }
        }
        return out;
    }

    /** Drops every cached block (those still used by requests stay allocated until they end). */
    public synchronized void clear() {
        List<Node> stack = new ArrayList<>(root.children.values());
        while (!stack.isEmpty()) {
            Node n = stack.remove(stack.size() - 1);
            stack.addAll(n.children.values());
            allocator.release(new int[] {n.block});
        }
        root.children.clear();
        size = 0;
    }

    private Key key(int[] tokens, int block) {
        return new Key(Arrays.copyOfRange(tokens, block * blockTokens, (block + 1) * blockTokens));
    }

    /** Cached blocks. */
    public synchronized int size() {
        return size;
    }

    /** Lookups that found at least one block. */
    public synchronized long hits() {
        return hits;
    }

    /** Blocks found by lookups. */
    public synchronized long hitBlocks() {
        return hitBlocks;
    }

    /** Lookups. */
    public synchronized long lookups() {
        return lookups;
    }
}
