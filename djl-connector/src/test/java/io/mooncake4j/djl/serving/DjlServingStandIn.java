package io.mooncake4j.djl.serving;

import ai.djl.Device;
import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.repository.zoo.Criteria;
import ai.djl.repository.zoo.ZooModel;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.Reader;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;

/**
 * DJL Serving's model loading path, run in a child JVM whose classpath has DJL but not the
 * connector: like {@code ModelServer}/{@code ModelManager} it sets as the thread context
 * classloader a {@code MutableClassLoader} stand-in holding {@code $MODEL_SERVER_HOME/deps/*.jar};
 * like wlm's {@code ModelInfo.initialize}/{@code load} it splits {@code serving.properties} into
 * arguments and {@code option.*} options and loads the model with the same {@link Criteria}
 * (model URL, name, engine, arguments, options, device). DJL's own {@code BaseModelLoader},
 * {@code ServingTranslatorFactory} and {@code ClassLoaderUtils} then find the translator and
 * block factory exactly as in the server. Uses only DJL and the JDK.
 *
 * <p>Arguments: {@code DEPS_DIR MODEL_DIR...}. Prints {@code ISOLATED} or {@code NOT-ISOLATED},
 * then {@code LOADED name translator-class loader-urls} per model and {@code READY}; then reads
 * lines {@code name json} and answers each with {@code status json} on one line. A model that fails
 * to load prints {@code FAILED name exception} and exits 1.
 */
public final class DjlServingStandIn {
    private DjlServingStandIn() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err); // only this protocol on stdout
        try {
            Class.forName("io.mooncake4j.djl.serving.KvTransferTranslator");
            out.println("NOT-ISOLATED");
        } catch (ClassNotFoundException expected) {
            out.println("ISOLATED");
        }
        Thread.currentThread().setContextClassLoader(deps(Path.of(args[0])));
        Map<String, ZooModel<Input, Output>> models = new LinkedHashMap<>();
        Map<String, Predictor<Input, Output>> predictors = new HashMap<>();
        for (String dir : Arrays.copyOfRange(args, 1, args.length)) {
            Path modelDir = Path.of(dir).toAbsolutePath();
            String name = modelDir.getFileName().toString();
            ZooModel<Input, Output> model;
            try {
                model = load(modelDir, name);
            } catch (Exception e) {
                e.printStackTrace();
                out.println("FAILED " + name + " " + e + (e.getCause() == null ? "" : " caused by " + e.getCause()));
                System.exit(1);
                return;
            }
            models.put(name, model);
            predictors.put(name, model.newPredictor());
            Object translator = model.getTranslator();
            ClassLoader cl = translator.getClass().getClassLoader();
            String urls = cl instanceof URLClassLoader ? Arrays.toString(((URLClassLoader) cl).getURLs()) : String.valueOf(cl);
            out.println("LOADED " + name + " " + translator.getClass().getName() + " " + urls);
        }
        out.println("READY");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            int space = line.indexOf(' ');
            Input input = new Input();
            input.add("data", line.substring(space + 1));
            Output o = predictors.get(line.substring(0, space)).predict(input);
            out.println(o.getCode() + " " + o.getData().getAsString().replace('\n', ' '));
        }
        predictors.values().forEach(Predictor::close);
        models.values().forEach(ZooModel::close);
    }

    /** As {@code MutableClassLoader}: every jar in {@code deps/}, the application classloader as parent. */
    private static ClassLoader deps(Path depsDir) throws IOException {
        List<URL> urls = new ArrayList<>();
        if (Files.isDirectory(depsDir)) {
            try (Stream<Path> s = Files.list(depsDir)) {
                for (Path p : (Iterable<Path>) s::iterator) {
                    if (p.toString().endsWith(".jar")) {
                        urls.add(p.toUri().toURL());
                    }
                }
            }
        }
        return new URLClassLoader(urls.toArray(new URL[0]), DjlServingStandIn.class.getClassLoader());
    }

    /** As {@code ModelInfo.initialize} then {@code ModelInfo.load} for a Java-engine model. */
    private static ZooModel<Input, Output> load(Path modelDir, String name) throws Exception {
        Properties prop = new Properties();
        try (Reader r = Files.newBufferedReader(modelDir.resolve("serving.properties"))) {
            prop.load(r);
        }
        Map<String, Object> arguments = new HashMap<>();
        Map<String, String> options = new HashMap<>();
        for (String key : prop.stringPropertyNames()) {
            if (key.startsWith("option.")) {
                options.put(key.substring(7), prop.getProperty(key));
            } else {
                arguments.put(key, prop.getProperty(key));
            }
        }
        Criteria.Builder<Input, Output> builder = Criteria.builder()
                .setTypes(Input.class, Output.class)
                .optModelUrls(modelDir.toUri().toString())
                .optModelName(name)
                .optEngine(prop.getProperty("engine"))
                .optArguments(arguments)
                .optOptions(options)
                .optDevice(Device.cpu());
        for (String key : new String[] {"translator", "translatorFactory"}) {
            if (prop.getProperty(key) != null) {
                builder.optArgument(key, prop.getProperty(key));
            }
        }
        return builder.build().loadModel();
    }
}
