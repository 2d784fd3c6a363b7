import ArgumentParser
import Foundation
import SLMModels
import SLMTensor
import SLMText
import SLMVisual
import SLMTrain

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Turn raw books into training text and token files.",
        subcommands: [Prepare.self, Tokenize.self, ScoreChunks.self])
}

/// A failure at run time: ArgumentParser prints it as one "Error: …" line (without the
/// usage text it adds for invalid arguments) and exits with status 1.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Errors from the libraries become one clear line and a non-zero exit.
func userFacing<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as PipelineError {
        throw CommandError(error.description)
    } catch let error as TokenizerError {
        throw CommandError(error.description)
    } catch let error as CocoaError {
        throw CommandError(error.localizedDescription)
    } catch let error as ConfigError {
        throw CommandError(error.message)
    } catch let error as TOMLError {
        throw CommandError(error.message)
    } catch let error as CheckpointError {
        throw CommandError(error.message)
    } catch let error as SafetensorsError {
        throw CommandError(error.message)
    } catch let error as VisualError {
        throw CommandError(error.description)
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension DataCommand {
    struct Prepare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Strip boilerplate, normalise, chunk and split books into train.txt, val.txt, train_enriched.jsonl and stats.json.",
            discussion: """
            --corpus takes a folder with manifest.tsv (columns file, author, title, category), a bare \
            folder of .txt files (author_title.txt names; sub-folders are categories), or one file. \
            Project Gutenberg header, footer and licence and the markup of markdown transcriptions \
            are removed. Outputs are written under temporary names and renamed at the end.
            """)

        @Option(help: "Folder with manifest.tsv, folder of .txt files, or one .txt file.")
        var corpus: String

        @Option(help: "Output folder (created if missing).")
        var out: String

        @Option(help: "Allowed characters: micro (a-z, space, period), classic (a-z, space, . , ; : ? ! ' \" - ( )), ascii (printable ASCII, case kept).")
        var charset = "ascii"

        @Flag(help: "Fold to lower case (micro and classic always do).")
        var lowercase = false

        @Flag(help: "Spell out numbers as words (\"42\" → \"forty-two\").")
        var numeralsAsWords = false

        @Option(help: "Shortest chunk kept, in characters.")
        var minChunk = 40

        @Option(help: "Longest chunk, in characters.")
        var maxChunk = 256

        @Option(help: "Share of chunks (or books, with --split-by-book) for validation; 0 puts everything in train.")
        var valFraction = 0.1

        @Flag(help: "Split by whole book so validation text is never seen in training.")
        var splitByBook = false

        @Option(help: "Seed of the train/validation split.")
        var seed: UInt64 = 1337

        @Option(help: "Invalid UTF-8: error (name file and byte offset) or replace (substitute U+FFFD and count).")
        var invalidUTF8 = "error"

        @OptionGroup var runtime: RuntimeOptions

        func run() throws {
            try runtime.apply()
            let stats = try userFacing { () throws -> DatasetStats in
                guard let policy = InvalidUTF8Policy(rawValue: invalidUTF8) else {
                    throw PipelineError.invalidOption("--invalid-utf8 must be error or replace, not \(invalidUTF8)")
                }
                var options = PrepareOptions(normalization: .init(charset: try Charset.named(charset), lowercase: lowercase,
                                                                  numeralsAsWords: numeralsAsWords))
                options.chunker = Chunker(minLength: minChunk, maxLength: maxChunk)
                options.validationFraction = valFraction
                options.splitByBook = splitByBook
                options.seed = seed
                options.invalidUTF8 = policy
                options.threads = Parallel.threadCount
                return try DataPreparer.run(corpus: corpus, out: URL(fileURLWithPath: out), options: options) { printError($0) }
            }
            let dropped = stats.books.reduce(0) { $0 + $1.dropped.total }
            print("\(stats.books.count) books → \(stats.trainChunks) train chunks (\(stats.trainCharacters) characters), "
                + "\(stats.validationChunks) validation chunks (\(stats.validationCharacters) characters); "
                + "\(dropped) characters outside the '\(charset)' charset dropped (see \(out)/stats.json)")
        }
    }

    struct Tokenize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode a prepared folder's train.txt and val.txt into train.bin, val.bin and meta.json.",
            discussion: "Ids are little-endian uint16 (uint32 for vocabularies over 65,536); chunks are separated by <|endoftext|>, or by a newline or space for character tokenizers.")

        @Option(help: "Folder written by `slm data prepare`.")
        var data: String

        @Option(help: "char (the charset the data was prepared with), char:NAME, or a tokenizer folder (tokenizer.json, or vocab.json + merges.txt).")
        var tokenizer: String

        @OptionGroup var runtime: RuntimeOptions

        func run() throws {
            try runtime.apply()
            let meta = try userFacing {
                try DatasetTokenizer.run(data: URL(fileURLWithPath: data), tokenizer: tokenizer,
                                         threads: Parallel.threadCount) { printError($0) }
            }
            print("\(meta.tokenizer) tokenizer, vocabulary \(meta.vocabularySize): \(meta.trainTokens) train and "
                + "\(meta.validationTokens) validation tokens (\(meta.width.rawValue)) in \(data)")
        }
    }

    struct ScoreChunks: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "score",
            abstract: "Score every training chunk by its mean next-token loss under a small trained model (train_scores.bin), for a coreset.",
            discussion: """
            The model reads train.bin in windows of its context; each token's loss goes to the chunk that \
            holds it. `training.coreset = {keep = 0.5, by = "loss"}` then trains on the chunks ranked just \
            below the noisiest 5% (coreset.noise). The model must use the data's tokenizer.
            """)

        @Option(help: "Checkpoint or model folder (trained on this data's tokens).")
        var model: String

        @Option(help: "Folder written by `slm data tokenize`.")
        var data: String

        @Option(help: "Windows per forward pass.")
        var batch = 8

        @OptionGroup var runtime: RuntimeOptions

        func run() throws {
            try runtime.apply()
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
            let dataURL = URL(fileURLWithPath: data)
            let (training, index) = try userFacing { () throws -> (TrainingData, ChunkIndex) in
                let training = try TrainingData(directory: dataURL)
                guard let chunks = training.meta.chunks else {
                    throw CommandError("\(data) has no chunk index (train_chunks.bin): run `slm data prepare` and `slm data tokenize` again")
                }
                return (training, try ChunkIndex.read(directory: dataURL, meta: chunks, trainTokens: training.train.count))
            }
            let m = try userFacing { try ModelStore.load(from: URL(fileURLWithPath: model)) }
            guard m.config.vocabSize == training.meta.vocabularySize else {
                throw CommandError("the model's vocabulary (\(m.config.vocabSize)) differs from the data's (\(training.meta.vocabularySize)): "
                    + "score with a model trained on this data's tokenizer")
            }
            let started = Date()
            var lastShown = -1
            let scores = ChunkScores.compute(model: m, data: training, index: index, batch: batch) { done, total in
                let percent = done * 100 / max(total, 1)
                if percent / 5 != lastShown / 5 || done == total {
                    lastShown = percent
                    printError("scored \(done)/\(total) windows (\(percent)%), \(Int(Date().timeIntervalSince(started))) s")
                }
            }
            try userFacing { try ChunkScores.write(scores, to: dataURL) }
            let seconds = Date().timeIntervalSince(started)
            let finite = scores.filter { !$0.isNaN }
            print(String(format: "%d chunks scored (mean loss %.4f) over %d tokens in %.0f s (%.0f tokens/s) → %@/%@", finite.count,
                         finite.reduce(0, +) / Float(max(finite.count, 1)), training.train.count, seconds,
                         Double(training.train.count) / max(seconds, 1e-9), data, ChunkScores.fileName))
        }
    }
}
